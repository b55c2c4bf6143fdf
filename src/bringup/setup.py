from glob import glob

from setuptools import find_packages, setup

package_name = "bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml", "README.md"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*")),
        ("share/" + package_name + "/deploy", glob("deploy/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="sensorhub developers",
    maintainer_email="dev@sensorhub.example.org",
    description="Graph file, plan, ros2 launch entry point and process supervisor for sensorhub",
    license="Apache-2.0",
    tests_require=["pytest"],
)
