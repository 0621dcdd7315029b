"""`python -m zoo`: the zoo command; torchrun starts each rank of a distributed run this way
(`torchrun --nproc-per-node N -m zoo finetune ...`, see docs/scaling.md)."""
from zoo.cli.main import main

if __name__ == "__main__":
    main()
