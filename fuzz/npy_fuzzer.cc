// libFuzzer entry point of the npy target (see fuzz/targets.h).
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return wfm::fuzz::FuzzNpy(data, size);
}
