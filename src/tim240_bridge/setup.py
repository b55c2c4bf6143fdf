from glob import glob

from setuptools import find_packages, setup

package_name = "tim240_bridge"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml", "README.md"]),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="sensorhub developers",
    maintainer_email="dev@sensorhub.example.org",
    description="SICK TiM240: native CoLa-A/B driver or sick_scan_xd, filtering, zones, emulator",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "tim240_bridge = tim240_bridge.node:main",
            "tim240_sim = tim240_bridge.sim:main",
        ],
    },
)
