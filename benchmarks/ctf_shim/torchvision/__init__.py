"""A stand-in for torchvision, used only by benchmarks/ctf.py: torch-ctf-estimation imports torchvision for
``transforms.functional.gaussian_blur`` alone, and torchvision has no CPU wheel for torch 2.13 here."""
