"""The serial port: open/reopen, low-latency mode, blocking reads into a preallocated buffer.

No ROS. The reader thread owns one :class:`SerialTransport`; every failure is a
:class:`PortDownError` (the caller reports it and reopens with backoff). Reads go straight to
the file descriptor (poll + readv into a bytearray) instead of pyserial's read(), which allocates
per call and loops on select; pyserial still does termios setup, exclusive locking, low latency.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct

import serial

TIOCGICOUNT = 0x545D
_ICOUNT = struct.Struct("20i")
_ICOUNT_FIELDS = ("cts", "dsr", "rng", "dcd", "rx", "tx", "frame", "overrun", "parity", "brk",
                  "buf_overrun")  # fmt: skip


class _Serial(serial.Serial):
    """pyserial's open() always flushes input; this one can keep it (and counts it either way)."""

    keep_input = False
    pending_at_open = 0
    _opening = False

    def open(self):
        self._opening = True
        try:
            super().open()
        finally:
            self._opening = False

    def _reset_input_buffer(self):
        if self._opening:
            try:
                self.pending_at_open = self.in_waiting
            except (OSError, serial.SerialException):
                self.pending_at_open = 0
            if self.keep_input:
                return
        super()._reset_input_buffer()


class PortDownError(OSError):
    """The port is missing, unplugged or failed; reopen later."""


class SerialTransport:
    def __init__(self, port: str, baud: int = 115200, buffer_size: int = 1 << 16):
        self.port = port
        self.baud = int(baud)
        self.buf = bytearray(buffer_size)
        self.mv = memoryview(self.buf)
        self._ser: serial.Serial | None = None
        self._fd = -1
        self._poll = select.poll()
        self.low_latency = "not opened"
        self.device = ""
        self.flushed_on_open = 0  # total bytes dropped by flushes at open
        self.pending_at_open = 0

    @property
    def is_open(self) -> bool:
        return self._ser is not None

    def open(self, flush: bool = True) -> None:
        """Open, configure, enable low latency, optionally drop stale input. Raises PortDownError.

        Flush when frames carry no sequence/time key: buffered bytes have unknown age. Keep them
        when they do: the keys place every buffered sample exactly, so nothing is thrown away.
        """
        self.close()
        try:
            ser = _Serial()
            ser.keep_input = not flush
            ser.port = self.port
            ser.baudrate = self.baud
            ser.timeout = 0
            ser.exclusive = True
            ser.open()
        except (serial.SerialException, OSError, ValueError) as e:
            raise PortDownError(errno.ENODEV, f"cannot open {self.port}: {e}") from None
        self._ser = ser
        self._fd = ser.fileno()
        self.device = os.path.realpath(self.port)
        self.low_latency = self._set_low_latency(ser)
        self.pending_at_open = ser.pending_at_open
        if flush:
            self.flushed_on_open += self.pending_at_open
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN | select.POLLERR | select.POLLHUP)

    def _set_low_latency(self, ser: serial.Serial) -> str:
        """ASYNC_LOW_LATENCY via TIOCSSERIAL, and the FTDI latency timer to 1 ms via sysfs."""
        notes = []
        try:
            ser.set_low_latency_mode(True)
            notes.append("ASYNC_LOW_LATENCY set")
        except (OSError, ValueError, AttributeError) as e:
            notes.append(f"ASYNC_LOW_LATENCY not supported ({getattr(e, 'strerror', e)})")
        name = os.path.basename(self.device)
        lt = f"/sys/bus/usb-serial/devices/{name}/latency_timer"
        if os.path.exists(lt):
            try:
                with open(lt) as f:
                    cur = int(f.read().strip() or 0)
                if cur > 1:
                    with open(lt, "w") as f:
                        f.write("1")
                    cur = 1
                notes.append(f"latency_timer {cur} ms")
            except (OSError, ValueError) as e:
                notes.append(f"latency_timer not writable ({e}); add the udev rule in README")
        return "; ".join(notes)

    def close(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except (OSError, serial.SerialException):
                pass
        self._ser = None
        self._fd = -1

    def wait(self, timeout: float) -> bool:
        """Block until readable (True) or timeout (False); raises PortDownError on hang-up."""
        if self._fd < 0:
            raise PortDownError(errno.EBADF, "port not open")
        try:
            ev = self._poll.poll(int(timeout * 1000) if timeout > 0 else 0)
        except InterruptedError:
            return False
        if not ev:
            return False
        mask = ev[0][1]
        if mask == select.POLLIN:
            return True
        if mask & (select.POLLERR | select.POLLNVAL) or (
            mask & select.POLLHUP and not mask & select.POLLIN
        ):
            raise PortDownError(errno.EIO, f"{self.port}: hang-up")
        return True

    def read(self, offset: int = 0) -> int:
        """Read what is available into buf[offset:]; the count (> 0), or PortDownError."""
        try:
            n = os.readv(self._fd, [self.mv[offset:]])
        except BlockingIOError:
            return 0
        except OSError as e:
            raise PortDownError(
                e.errno or errno.EIO, f"{self.port}: read failed: {e.strerror}"
            ) from None
        if n == 0:
            raise PortDownError(errno.EIO, f"{self.port}: disconnected (read returned no data)")
        return n

    def in_waiting(self) -> int:
        try:
            return self._ser.in_waiting if self._ser is not None else 0
        except (OSError, serial.SerialException):
            return 0

    def icount(self) -> dict | None:
        """Kernel UART error counters (TIOCGICOUNT); None where unsupported (pty, some USB)."""
        if self._fd < 0:
            return None
        try:
            raw = fcntl.ioctl(self._fd, TIOCGICOUNT, bytes(_ICOUNT.size))
        except OSError:
            return None
        return dict(zip(_ICOUNT_FIELDS, _ICOUNT.unpack(raw), strict=False))
