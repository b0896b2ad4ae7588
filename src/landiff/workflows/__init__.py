"""The application layer: end-to-end workflows built on the library below them.

* :mod:`.demo`: ``landiff demo``, a diffusion model and a GAN trained, sampled, measured and reported;
* :mod:`.pairing`: the two runs of a diffusion-vs-GAN pair with one recipe and budget each;
* :mod:`.compare`: ``landiff compare``, one run measured with the protocol of its family;
* :mod:`.cost`: training and sampling FLOPs per image, for the cost comparison;
* :mod:`.study`: ``landiff study``, the study's experiments, statistics and report.

Nothing in the library (``landiff.train``, ``landiff.metrics``, ``landiff.report`` and below)
imports from here; only the CLI does (docs/architecture.md).
"""
