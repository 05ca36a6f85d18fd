"""Install vtrack. The C++/CUDA extension vtrack._C is added by csrc/ (see docs/design.md)."""
from setuptools import find_packages, setup

setup(
    name="vtrack",
    version="0.1.0",
    description="Fused attention kernels (Triton, C++/CUDA) and trackers for visual object tracking",
    packages=find_packages(include=["vtrack", "vtrack.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",
        "numpy",
        "opencv-python-headless",
        "tqdm",
        "matplotlib",
        "pyyaml",
        "timm",
    ],
    extras_require={"triton": ["triton"], "language": ["transformers"]},
    entry_points={"console_scripts": ["vtrack=vtrack.cli:main"]},
)
