from setuptools import find_packages, setup

package_name = "sensorhub_tools"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml", "README.md"]),
        # colcon's setup.bash puts <prefix>/bin on PATH: `sensorhub` works in ./env.sh too.
        ("bin", ["scripts/sensorhub"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="sensorhub developers",
    maintainer_email="dev@sensorhub.example.org",
    description="The sensorhub command: up, status, plan, check, report, docs, bag repair",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "sensorhub = sensorhub_tools.cli:main",
        ],
    },
)
