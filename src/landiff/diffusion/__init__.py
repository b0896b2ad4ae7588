"""The diffusion process (pure maths): schedules, q and p, losses in bits/dim, respacing, timestep sampling."""

from landiff.diffusion.edm import FORMULATIONS, EDMNetwork, EDMProcess, SigmaSampler
from landiff.diffusion.gaussian import (
    HYBRID_LAMBDA,
    LOSSES,
    PREDICTIONS,
    VARIANCES,
    WEIGHTINGS,
    GaussianDiffusion,
    LossType,
    MeanVariance,
    NLLResult,
    Prediction,
    TrainingLosses,
    VarianceType,
)
from landiff.diffusion.likelihood import discretized_gaussian_log_likelihood, mean_flat, normal_kl
from landiff.diffusion.respace import respace_betas, space_timesteps
from landiff.diffusion.schedules import SCHEDULES, beta_schedule
from landiff.diffusion.timestep_sampler import (
    TIMESTEP_SAMPLERS,
    LogNormalSampler,
    LossAwareSampler,
    TimestepSampler,
    UniformSampler,
    make_timestep_sampler,
)

__all__ = [
    "FORMULATIONS",
    "TIMESTEP_SAMPLERS",
    "TimestepSampler",
    "EDMNetwork",
    "EDMProcess",
    "LogNormalSampler",
    "SigmaSampler",
    "HYBRID_LAMBDA",
    "LOSSES",
    "PREDICTIONS",
    "SCHEDULES",
    "VARIANCES",
    "WEIGHTINGS",
    "GaussianDiffusion",
    "LossAwareSampler",
    "LossType",
    "MeanVariance",
    "NLLResult",
    "Prediction",
    "TrainingLosses",
    "UniformSampler",
    "VarianceType",
    "beta_schedule",
    "discretized_gaussian_log_likelihood",
    "make_timestep_sampler",
    "mean_flat",
    "normal_kl",
    "respace_betas",
    "space_timesteps",
]
