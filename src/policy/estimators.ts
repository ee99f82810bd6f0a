// Estimators for the online checkpoint policy (online.ts): what the model's inputs are
// on a live cluster, learnt from the replicated history and starting from priors.
//
// - The failure rate λ = 1/M of a box: a gamma prior Gamma(α, β), with α pseudo-losses
//   over β node-seconds (so the prior mean M₀ = β/α), updated by the node losses the
//   cluster committed and the node-seconds it observed: the posterior mean is
//   (α + losses) / (β + exposure). With no observations it is the prior; with many,
//   the observed rate.
// - Costs (C per checkpoint, R per restart): the mean of recent measurements shrunk
//   towards a prior worth `priorWeight` measurements.

export interface FailurePrior {
  /** The prior mean time between failures of one box, in seconds. */
  mtbfSeconds: number;
  /** How many losses the prior is worth (α); the larger, the slower observations move it. */
  weight: number;
}

export interface FailureEstimate {
  mtbfSeconds: number;
  losses: number;
  exposureSeconds: number;
}

/** Posterior mean time between failures given `losses` over `exposureSeconds` of node up-time. */
export function estimateMtbf(prior: FailurePrior, losses: number, exposureSeconds: number): FailureEstimate {
  if (!(prior.mtbfSeconds > 0) || !(prior.weight > 0)) throw new RangeError('the failure prior needs mtbfSeconds > 0 and weight > 0');
  const alpha = prior.weight;
  const beta = prior.weight * prior.mtbfSeconds;
  const l = Math.max(0, losses);
  const e = Math.max(0, exposureSeconds);
  const rate = (alpha + l) / (beta + e);
  return { mtbfSeconds: 1 / rate, losses: l, exposureSeconds: e };
}

export interface CostEstimate {
  seconds: number;
  samples: number;
}

/** The mean of the newest `window` samples, shrunk towards `prior` as if it were `priorWeight` samples. */
export function estimateCost(samples: readonly number[], prior: number, priorWeight = 1, window = 20): CostEstimate {
  const recent = samples.filter((s) => Number.isFinite(s) && s >= 0).slice(-window);
  const sum = recent.reduce((a, b) => a + b, 0);
  return { seconds: (sum + prior * priorWeight) / (recent.length + priorWeight), samples: recent.length };
}
