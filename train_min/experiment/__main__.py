"""`python -m train_min.experiment RECIPE`: the method in miniature (see the package's docstring)."""

from train_min.experiment import main

main()
