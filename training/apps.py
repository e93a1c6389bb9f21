from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Model lifecycle: prepare data, train, evaluate, register and activate model versions."""

    name = "training"
