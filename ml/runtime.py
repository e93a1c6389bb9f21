"""TensorFlow process set-up: thread counts, GPU memory growth and quiet logs, applied once per process."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

_configured = False


def configure_tensorflow(threads: int = 0) -> None:
    """Set TensorFlow's thread pools and let GPUs grow their memory instead of grabbing all of it.

    `threads` = 0 lets TensorFlow choose from the core count. Thread pools can only be set before
    TensorFlow runs its first op, so only the first call in a process has an effect; later calls are
    no-ops (a worker calls this at start-up, before any model loads).
    """
    global _configured
    if _configured:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    try:
        if threads > 0:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
        for gpu in gpus:
            # Without this TensorFlow reserves nearly all GPU memory at the first op, so a second worker
            # process on the same GPU could not start.
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        # TensorFlow was already initialised by an earlier import in this process; keep its settings.
        logger.info("TensorFlow already initialised; thread and GPU settings left as they are")
    _configured = True
    logger.info("%s", device_summary())


def device_summary() -> str:
    """One line saying where the models run: the GPUs TensorFlow sees, or the CPU and its thread pools."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                details = tf.config.experimental.get_device_details(gpu)
            except (RuntimeError, ValueError):
                details = {}
            names.append(f"{gpu.name} ({details.get('device_name', 'GPU')})")
        return f"TensorFlow {tf.__version__} runs the models on GPU:0 of {', '.join(names)}, memory growth on"
    intra = tf.config.threading.get_intra_op_parallelism_threads() or "auto"
    inter = tf.config.threading.get_inter_op_parallelism_threads() or "auto"
    return (
        f"TensorFlow {tf.__version__} runs the models on the CPU ({os.cpu_count()} cores; "
        f"intra-op threads {intra}, inter-op threads {inter}); no GPU is visible"
    )


def compute_device() -> str:
    """ "GPU:0" where TensorFlow sees a GPU, else "CPU:0" (MTCNN and Keras both take this form)."""
    import tensorflow as tf

    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
