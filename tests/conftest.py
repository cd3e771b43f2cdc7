"""Shared test set-up.

``tests`` is a package, so pytest puts the repository root on ``sys.path`` when it loads this
file; every test can then import the fake-data writers with
``from tests.data.fakes import write_mnist_raw, write_cifar100_raw``.
"""
