// DataParallel across real processes on loopback: each test forks one child
// per rank (before any LibTorch thread pool exists in the parent), the
// children rendezvous through a TCPStore on a free port and run the
// collectives, and report through their exit code (0 = every check passed,
// otherwise the number of the failed check) and stderr.
#include "model/distributed/data_parallel.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "tests/testing/free_port.h"

namespace wfm::model::distributed {
namespace {

using Clock = std::chrono::steady_clock;

DistributedOptions Options(int rank, int world, int port, double timeout_seconds = 30) {
  DistributedOptions o;
  o.rank = rank;
  o.world_size = world;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.timeout = absl::Seconds(timeout_seconds);
  return o;
}

struct RankResult {
  int code = -1;           // exit code, or 128 + signal
  double seconds = 0.0;    // from the start of all ranks to this one's exit
};

// Runs fn(rank) in `ranks` child processes of a world of `world` (ranks
// 0..ranks-1; fewer than world leaves the rest missing) and waits at most
// `limit_seconds` for each; a child still running then is killed (code -1),
// and so is every child still running once rank 0 has exited when
// `stop_with_rank0` (a rank made to stall on purpose).
std::vector<RankResult> RunRanks(int world, int ranks, const std::function<int(int)>& fn,
                                 double limit_seconds = 120, bool stop_with_rank0 = false) {
  std::vector<pid_t> pids;
  const auto start = Clock::now();
  for (int r = 0; r < ranks; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      int code = 99;
      try {
        code = fn(r);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: exception %s\n", r, e.what());
      }
      std::fflush(nullptr);
      _exit(code);
    }
    pids.push_back(pid);
  }
  std::vector<RankResult> results(ranks);
  std::vector<bool> done(ranks, false);
  int remaining = ranks;
  while (remaining > 0) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    for (int r = 0; r < ranks; ++r) {
      if (done[r]) continue;
      int status = 0;
      if (waitpid(pids[r], &status, WNOHANG) == pids[r]) {
        done[r] = true;
        --remaining;
        results[r].code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        results[r].seconds = elapsed;
      } else if (elapsed > limit_seconds || (stop_with_rank0 && r > 0 && done[0])) {
        kill(pids[r], SIGKILL);
        waitpid(pids[r], &status, 0);
        done[r] = true;
        --remaining;
        results[r].code = -1;
        results[r].seconds = elapsed;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return results;
}

#define RANK_CHECK(cond, code)                                                 \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "rank check failed (%d): %s\n", code, #cond);      \
      return code;                                                             \
    }                                                                          \
  } while (false)

TEST(DataParallelTest, AverageGradientsIsTheExactMeanOverRanks) {
  const int port = wfm::testing::FreePort();
  constexpr int kWorld = 3;
  const auto results = RunRanks(kWorld, kWorld, [&](int rank) {
    auto dp = DataParallel::Connect(Options(rank, kWorld, port));
    if (!dp.ok()) {
      std::fprintf(stderr, "%s\n", dp.status().ToString().c_str());
      return 1;
    }
    // float32 and float64 parameters (two buffers); p2's gradient exists on
    // rank 1 only (a parameter only its share used), p3's on no rank.
    std::vector<at::Tensor> params = {
        at::zeros({3, 2}, at::kFloat).requires_grad_(), at::zeros({4}, at::kDouble).requires_grad_(),
        at::zeros({2}, at::kFloat).requires_grad_(), at::zeros({5}, at::kFloat).requires_grad_()};
    const double r = rank + 1;  // 1, 2, 3: the mean over ranks is 2
    std::vector<at::Tensor> grads = {
        at::arange(6, at::kFloat).view({3, 2}) * static_cast<float>(r * 0.25),
        at::full({4}, r * 0.5, at::kDouble), at::Tensor(), at::Tensor()};
    if (rank == 1) grads[2] = at::full({2}, 3.0f);
    for (size_t i = 0; i < params.size(); ++i) {
      if (grads[i].defined()) params[i].mutable_grad() = grads[i];
    }
    const at::Tensor g0 = grads[0];  // replaced in place
    RANK_CHECK((*dp)->AverageGradients(params, grads).ok(), 2);
    RANK_CHECK(at::equal(grads[0], at::arange(6, at::kFloat).view({3, 2}) * 0.5f), 3);
    RANK_CHECK(grads[0].data_ptr() == g0.data_ptr(), 4);
    RANK_CHECK(at::equal(grads[1], at::full({4}, 1.0, at::kDouble)), 5);
    // Zero on ranks 0 and 2, 3 on rank 1: mean 1, also stored as p2's grad.
    RANK_CHECK(grads[2].defined() && at::equal(grads[2], at::full({2}, 1.0f)), 6);
    RANK_CHECK(params[2].grad().defined() && at::equal(params[2].grad(), grads[2]), 7);
    RANK_CHECK(!grads[3].defined() && !params[3].grad().defined(), 8);
    RANK_CHECK((*dp)->gradient_stats().calls == 1 && (*dp)->gradient_stats().bytes > 0, 9);
    return 0;
  });
  for (int r = 0; r < kWorld; ++r) EXPECT_EQ(results[r].code, 0) << "rank " << r;
}

TEST(DataParallelTest, BroadcastGivesEveryRankRankZerosValues) {
  const int port = wfm::testing::FreePort();
  const auto results = RunRanks(2, 2, [&](int rank) {
    auto dp = DataParallel::Connect(Options(rank, 2, port));
    if (!dp.ok()) return 1;
    std::vector<at::Tensor> tensors = {
        at::full({2, 3}, static_cast<float>(rank + 7)).requires_grad_(),
        at::full({4}, static_cast<int64_t>(rank * 100 + 5), at::kLong),
        at::full({1}, rank + 0.5, at::kDouble)};
    const void* before = tensors[0].data_ptr();
    RANK_CHECK((*dp)->Broadcast(tensors).ok(), 2);
    RANK_CHECK(at::equal(tensors[0], at::full({2, 3}, 7.0f)), 3);
    RANK_CHECK(at::equal(tensors[1], at::full({4}, int64_t{5}, at::kLong)), 4);
    RANK_CHECK(at::equal(tensors[2], at::full({1}, 0.5, at::kDouble)), 5);
    RANK_CHECK(tensors[0].data_ptr() == before && tensors[0].requires_grad(), 6);
    return 0;
  });
  EXPECT_EQ(results[0].code, 0);
  EXPECT_EQ(results[1].code, 0);
}

TEST(DataParallelTest, MeanAllGatherAndBarrier) {
  const int port = wfm::testing::FreePort();
  const auto results = RunRanks(3, 3, [&](int rank) {
    auto dp = DataParallel::Connect(Options(rank, 3, port));
    if (!dp.ok()) return 1;
    auto mean = (*dp)->Mean(rank + 1.0, "a value");
    RANK_CHECK(mean.ok() && *mean == 2.0, 2);
    auto all = (*dp)->AllGather(rank * 10 - 1, "a value");
    RANK_CHECK(all.ok() && *all == (std::vector<int64_t>{-1, 9, 19}), 3);
    RANK_CHECK((*dp)->Barrier("the end").ok(), 4);
    return 0;
  });
  for (int r = 0; r < 3; ++r) EXPECT_EQ(results[r].code, 0) << "rank " << r;
}

TEST(DataParallelTest, AgreeGivesEveryRankTheFailingRanksStatus) {
  const int port = wfm::testing::FreePort();
  const auto results = RunRanks(2, 2, [&](int rank) {
    auto dp = DataParallel::Connect(Options(rank, 2, port));
    if (!dp.ok()) return 1;
    RANK_CHECK((*dp)->Agree(absl::OkStatus(), "step one").ok(), 2);
    const absl::Status local =
        rank == 1 ? absl::NotFoundError("data.npz: no such file") : absl::OkStatus();
    const absl::Status agreed = (*dp)->Agree(local, "step two");
    RANK_CHECK(absl::IsNotFound(agreed), 3);
    RANK_CHECK(agreed.message() == "rank 1: data.npz: no such file", 4);
    return 0;
  });
  EXPECT_EQ(results[0].code, 0);
  EXPECT_EQ(results[1].code, 0);
}

TEST(DataParallelTest, ARankThatDiesMakesTheOtherFailInsteadOfHanging) {
  const int port = wfm::testing::FreePort();
  constexpr double kTimeout = 60;
  // Rank 1 dies only once rank 0 is connected: dying while rank 0 is still
  // in Connect fails rank 0's Connect instead (also an error, but not the
  // collective's path this test checks). Rank 0 says so through a pipe.
  int connected[2];
  ASSERT_EQ(pipe(connected), 0);
  const auto start = Clock::now();
  const auto results = RunRanks(2, 2, [&](int rank) {
    auto dp = DataParallel::Connect(Options(rank, 2, port, kTimeout));
    if (!dp.ok()) {
      std::fprintf(stderr, "rank %d: %s\n", rank, dp.status().ToString().c_str());
      return 1;
    }
    if (rank == 1) {
      pollfd wait_for_rank_0 = {connected[0], POLLIN, 0};
      RANK_CHECK(poll(&wait_for_rank_0, 1, static_cast<int>(kTimeout * 1000)) == 1, 5);
      _exit(0);  // dies before the first collective
    }
    RANK_CHECK(write(connected[1], "c", 1) == 1, 6);
    std::vector<at::Tensor> params = {at::zeros({8}).requires_grad_()};
    std::vector<at::Tensor> grads = {at::ones({8})};
    const absl::Status s = (*dp)->AverageGradients(params, grads);
    std::fprintf(stderr, "rank 0: %s\n", s.ToString().c_str());
    RANK_CHECK(absl::IsUnavailable(s), 2);
    RANK_CHECK(absl::StrContains(s.message(), "another rank died"), 3);
    // The group is closed: later calls fail at once.
    RANK_CHECK(absl::IsFailedPrecondition((*dp)->Barrier("after")), 4);
    return 0;
  });
  close(connected[0]);
  close(connected[1]);
  EXPECT_EQ(results[0].code, 0);
  EXPECT_EQ(results[1].code, 0);
  // A closed connection is noticed at once, long before the timeout.
  EXPECT_LT(results[0].seconds, kTimeout);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), kTimeout);
}

TEST(DataParallelTest, AStalledRankMakesTheOtherFailAfterTheTimeout) {
  const int port = wfm::testing::FreePort();
  constexpr double kTimeout = 3;
  constexpr int kRankLimit = 25;
  const auto results = RunRanks(
      2, 2,
      [&](int rank) {
        auto dp = DataParallel::Connect(Options(rank, 2, port, kTimeout));
        if (!dp.ok()) return 1;
        if (rank == 1) {
          std::this_thread::sleep_for(std::chrono::seconds(600));  // never joins
          return 0;
        }
        auto mean = (*dp)->Mean(1.0, "the loss");
        std::fprintf(stderr, "rank 0: %s\n", mean.status().ToString().c_str());
        RANK_CHECK(absl::IsUnavailable(mean.status()), 2);
        RANK_CHECK(absl::StrContains(mean.status().message(), "3 s timeout"), 3);
        // Rank 0 ends without destroying its group: the group's destructor
        // waits for the stalled peer's connection (about 20 s under ASan),
        // which this test does not check.
        (void)dp->release();
        return 0;
      },
      // Rank 1 is killed when rank 0 has ended, which must be well before
      // this limit.
      /*limit_seconds=*/kRankLimit, /*stop_with_rank0=*/true);
  EXPECT_EQ(results[0].code, 0);
  EXPECT_GE(results[0].seconds, kTimeout * 0.9);
  EXPECT_LT(results[0].seconds, kRankLimit);
  EXPECT_EQ(results[1].code, -1);  // killed by RunRanks
}

TEST(DataParallelTest, RendezvousWithoutPeersTimesOut) {
  const int port = wfm::testing::FreePort();
  // Rank 0 alone of two: nobody joins its store.
  auto alone = RunRanks(2, 1, [&](int rank) {
    auto dp = DataParallel::Connect(Options(rank, 2, port, 2));
    std::fprintf(stderr, "rank 0: %s\n", dp.status().ToString().c_str());
    RANK_CHECK(absl::IsUnavailable(dp.status()), 2);
    RANK_CHECK(absl::StrContains(dp.status().message(), "not every rank connected"), 3);
    return 0;
  });
  EXPECT_EQ(alone[0].code, 0);
  // Rank 1 without rank 0: nobody hosts the store.
  const int other_port = wfm::testing::FreePort();
  auto orphan = RunRanks(2, 1, [&](int) {
    auto dp = DataParallel::Connect(Options(1, 2, other_port, 2));
    std::fprintf(stderr, "rank 1: %s\n", dp.status().ToString().c_str());
    RANK_CHECK(absl::IsUnavailable(dp.status()), 2);
    RANK_CHECK(absl::StrContains(dp.status().message(), "rank 0 not reachable"), 3);
    return 0;
  });
  EXPECT_EQ(orphan[0].code, 0);
}

TEST(DataParallelTest, WorldOfOneIsLocal) {
  auto dp = DataParallel::Connect(Options(0, 1, 1));
  ASSERT_TRUE(dp.ok()) << dp.status();
  std::vector<at::Tensor> params = {at::zeros({2}).requires_grad_()};
  std::vector<at::Tensor> grads = {at::full({2}, 3.0f)};
  ASSERT_TRUE((*dp)->AverageGradients(params, grads).ok());
  EXPECT_TRUE(at::equal(grads[0], at::full({2}, 3.0f)));
  EXPECT_EQ(*(*dp)->Mean(4.5, "x"), 4.5);
  EXPECT_EQ(*(*dp)->AllGather(7, "x"), std::vector<int64_t>{7});
  EXPECT_TRUE(absl::IsInternal((*dp)->Agree(absl::InternalError("boom"), "x")));
}

TEST(DataParallelTest, OptionsAndEnvironment) {
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateDistributedOptions(Options(2, 2, 29500))));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateDistributedOptions(Options(0, 0, 29500))));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateDistributedOptions(Options(0, 2, 0))));
  EXPECT_TRUE(ValidateDistributedOptions(Options(1, 2, 29500)).ok());

  setenv("WORLD_SIZE", "4", 1);
  setenv("RANK", "3", 1);
  setenv("MASTER_ADDR", "trainer-0.trainers", 1);
  setenv("MASTER_PORT", "29501", 1);
  DistributedOptions o;
  ASSERT_TRUE(ApplyEnvironment(&o).ok());
  EXPECT_EQ(o.world_size, 4);
  EXPECT_EQ(o.rank, 3);
  EXPECT_EQ(o.master_addr, "trainer-0.trainers");
  EXPECT_EQ(o.master_port, 29501);
  setenv("RANK", "three", 1);
  const absl::Status bad = ApplyEnvironment(&o);
  EXPECT_TRUE(absl::IsInvalidArgument(bad));
  EXPECT_TRUE(absl::StrContains(bad.message(), "RANK=three"));
  for (const char* v : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(v);
}

TEST(DataParallelTest, TensorDigestSeesEveryBitAndTheShape) {
  const at::Tensor a = at::arange(12, at::kFloat);
  EXPECT_EQ(TensorDigest({a}), TensorDigest({a.clone()}));
  at::Tensor b = a.clone();
  // Flip the lowest mantissa bit of one value.
  auto* bits = reinterpret_cast<uint32_t*>(b.data_ptr<float>());
  bits[7] ^= 1u;
  EXPECT_NE(TensorDigest({a}), TensorDigest({b}));
  EXPECT_NE(TensorDigest({a}), TensorDigest({a.view({3, 4})}));
  EXPECT_NE(TensorDigest({a}), TensorDigest({a.to(at::kDouble)}));
  EXPECT_NE(TensorDigest({a, a}), TensorDigest({a}));
  // Odd byte counts (a tail shorter than a word) count too.
  const at::Tensor c = at::zeros({3}, at::kByte);
  at::Tensor d = c.clone();
  d[2] = 1;
  EXPECT_NE(TensorDigest({c}), TensorDigest({d}));
}

}  // namespace
}  // namespace wfm::model::distributed
