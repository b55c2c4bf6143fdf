"""lab_page: the sensor lab's web page (Foxglove WebSocket client) and its static server."""
