from setuptools import find_packages, setup

package_name = "sensorhub_testing"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="sensorhub developers",
    maintainer_email="dev@sensorhub.example.org",
    description="Test fixtures shared by every sensorhub package's tests",
    license="Apache-2.0",
)
