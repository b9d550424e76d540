// Limits on one sampling request, shared by the samplers of both families;
// requests beyond them get RESOURCE_EXHAUSTED.
#ifndef WFM_MODEL_SAMPLE_SAMPLE_LIMITS_H_
#define WFM_MODEL_SAMPLE_SAMPLE_LIMITS_H_

#include <cstdint>

namespace wfm::model {

struct SampleLimits {
  int64_t max_samples = 4096;   // samples per request
  int64_t max_points = 16384;   // points per generated cloud
  int64_t max_steps = 10000;    // integration steps
  // Trajectory values per request: (steps + 1) · (points or covariance and
  // mean values) summed over the samples.
  int64_t max_trajectory_values = int64_t{1} << 28;
};

}  // namespace wfm::model

#endif  // WFM_MODEL_SAMPLE_SAMPLE_LIMITS_H_
