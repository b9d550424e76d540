// Fuzz targets: one entry function per parser or validator that takes bytes
// from outside the process. Each takes arbitrary bytes and returns 0; none may
// crash, leak, read out of bounds, trip a sanitizer, or allocate beyond what
// its input justifies, whatever the bytes. Where a parse succeeds, the targets
// also check invariants (a parsed array re-encodes to the same values, a
// validated training config survives its JSON round trip) and abort when one
// fails, so the fuzzer reports it like a crash.
//
// The fuzzer executables (fuzz/<name>_fuzzer.cc, built with -DWFM_FUZZ=ON and
// clang, run by deploy/fuzz.sh) call these; tests/fuzz/corpus_replay_test.cc
// replays the committed corpora and regression inputs through them in the
// normal build.
#ifndef WFM_FUZZ_TARGETS_H_
#define WFM_FUZZ_TARGETS_H_

#include <cstddef>
#include <cstdint>

namespace wfm::fuzz {

// The bytes as a .npy file (model/io/npy.h ParseNpy), then the numeric
// conversions of the parsed array and its re-encoding.
int FuzzNpy(const uint8_t* data, size_t size);

// The bytes as an .npz file (written to a per-process temporary folder):
// ReadNpz, then the point-cloud and Gaussian loaders (model/io/point_sets.h).
int FuzzNpz(const uint8_t* data, size_t size);

// The bytes as an .h5ad file (written to a per-process temporary folder):
// every read of model/io/h5ad.h (X, obsm, obs columns and their labels, obs
// and var names). HDF5's error printing is turned off.
int FuzzH5ad(const uint8_t* data, size_t size);

// The bytes as a checkpoint (model/checkpoint/checkpoint.h Parse), then the
// same bytes with the whole-file length and CRC fields made consistent, and
// once more with every tensor's crc32 in the JSON header recomputed, so the
// fuzzer reaches the header and tensor checks behind the checksums.
int FuzzCheckpoint(const uint8_t* data, size_t size);

// data[0] % kNumRequestTypes selects a wfm.v1 request message (kRequestTypes
// order); the rest is parsed as that message and run through the server's
// API-boundary validation (server/names.h, server/proto_convert.h, the
// dataset store's upload checks, the training config validation). For
// UploadDatasetRequest the rest is a stream: varint-length-prefixed messages,
// the first the header, as a client's upload stream sends them.
int FuzzRequests(const uint8_t* data, size_t size);

// The request messages selectable by FuzzRequests, in selector order.
inline constexpr const char* kRequestTypes[] = {
    "UploadDatasetRequest",    "ListDatasetsRequest",      "GetDatasetRequest",
    "DeleteDatasetRequest",    "StartTrainingRequest",     "GetTrainingJobRequest",
    "ListTrainingJobsRequest", "CancelTrainingJobRequest", "WatchTrainingJobRequest",
    "ListModelsRequest",       "GetModelRequest",          "DeleteModelRequest",
    "SampleNichesRequest",     "SampleGaussiansRequest",   "EvaluateRequest",
    "UpdateModelRequest",
};
inline constexpr int kNumRequestTypes = sizeof(kRequestTypes) / sizeof(kRequestTypes[0]);

}  // namespace wfm::fuzz

#endif  // WFM_FUZZ_TARGETS_H_
