"""Phase 5 training, one concern per module, in data-flow order:

``config`` (a run's settings, torch-free) -> ``data`` (the stamp stream and its loader)
-> ``model`` -> ``objectives`` (loss, schedule, LR scaling) -> ``distributed`` (rank,
device, precision, collectives) -> ``state`` (the TrainState dataclass) -> ``learner``
(model, optimiser, schedule, scaler, EMA built together) -> ``checkpoint`` (save, resume
or restart, publish) -> ``early_stopping`` (which epoch is selected, when to stop) ->
``preemption`` (SIGTERM) -> ``inference`` (scoring with a trained model) -> ``loop`` (one
epoch, one validation) -> ``fit`` (the orchestration) -> ``launch`` (one process or
torchrun).
"""
