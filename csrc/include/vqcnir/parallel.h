// at::parallel_for whose worker threads see the caller's thread-local state.
//
// OpenMP workers start with default thread-local state: no inference mode, grad mode on, no dispatch-key
// exclusions. A kernel body that calls ATen ops (at::mm, in-place updates of outputs) then fails under
// torch.inference_mode ("Inplace update to inference tensor outside InferenceMode") or records autograd
// history. Every CPU kernel uses this wrapper instead of at::parallel_for.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <cstdint>

namespace vqcnir {

template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain_size, const F& body) {
  const at::ThreadLocalState state;
  at::parallel_for(begin, end, grain_size, [&](int64_t chunk_begin, int64_t chunk_end) {
    const at::ThreadLocalStateGuard guard(state);
    body(chunk_begin, chunk_end);
  });
}

}  // namespace vqcnir
