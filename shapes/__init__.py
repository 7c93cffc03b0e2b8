"""A small world of shapes: synthetic scenes, a tiny SD1.5-layout model trained on them,
and a quality check that reads objects back from pixels.

Modules: ``data`` (scene generator, captions, palette), ``vae`` (TAESD-format autoencoder with
an analytic 8x pooling encoder), ``model`` (build the host's MODEL/CLIP/VAE from the weights),
``train`` (the training script), ``quality`` (objects and attention centroids from pixels).
``data`` and ``vae`` are pure torch; the rest touch the host.
"""
