"""Super-resolution: a low-resolution OPG (the GAN's output) -> the full-size image.

Learned from the real training split alone (pairs made by area-downscaling real images), on random
patches, fully convolutional and run tile by tile (:mod:`pipeline.sr.upscale`)."""
