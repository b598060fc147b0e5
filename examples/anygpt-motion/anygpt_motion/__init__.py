"""An example anygpt plugin: the ``motion`` modality (2-D trajectories ``[T, 2]`` in ``.npy`` files) and the
``motion-caption`` benchmark task. Importing the package registers the modality."""

from anygpt_motion.codec import MOTION, MotionCodec

__all__ = ["MOTION", "MotionCodec"]
