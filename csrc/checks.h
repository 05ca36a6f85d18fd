// Argument checks shared by the CPU and CUDA implementations of the vtrack ops (host code only).
//
// Every op entry point validates shapes, dtypes and devices with TORCH_CHECK so that a direct call
// to torch.ops.vtrack.* with bad arguments raises a clear RuntimeError (ValueError/TypeError for
// the TORCH_CHECK_VALUE/TYPE variants) instead of reading out of bounds.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <string>
#include <tuple>

namespace vtrack {

struct Dims {
  int64_t B, H, N, M, D;
};

inline std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(t.size(i));
  }
  return s + "]";
}

// q [B,H,N,D], k/v [B,H,M,D]: same dtype and device, floating.
inline Dims check_qkv(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const char* op) {
  TORCH_CHECK_VALUE(q.defined() && k.defined() && v.defined(), op, ": q, k and v must be defined tensors");
  TORCH_CHECK_VALUE(q.dim() == 4, op, ": q: expected a 4-D tensor [B, H, N, D], got shape ", shape_str(q));
  TORCH_CHECK_VALUE(k.dim() == 4, op, ": k: expected a 4-D tensor [B, H, M, D], got shape ", shape_str(k));
  TORCH_CHECK_VALUE(v.dim() == 4, op, ": v: expected a 4-D tensor [B, H, M, D], got shape ", shape_str(v));
  TORCH_CHECK_TYPE(q.is_floating_point(), op, ": q: expected a floating dtype, got ", q.scalar_type());
  TORCH_CHECK_TYPE(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(), op,
                   ": k and v: expected dtype ", q.scalar_type(), " (same as q), got ", k.scalar_type(), " and ",
                   v.scalar_type());
  TORCH_CHECK_VALUE(k.device() == q.device() && v.device() == q.device(), op,
                    ": q, k and v must be on the same device, got ", q.device(), ", ", k.device(), ", ", v.device());
  Dims d{q.size(0), q.size(1), q.size(2), k.size(2), q.size(3)};
  TORCH_CHECK_VALUE(k.size(0) == d.B && k.size(1) == d.H && k.size(3) == d.D, op, ": k: expected shape [B=", d.B,
                    ", H=", d.H, ", M, D=", d.D, "] matching q ", shape_str(q), ", got ", shape_str(k));
  TORCH_CHECK_VALUE(v.sizes() == k.sizes(), op, ": v: expected the shape of k ", shape_str(k), ", got ", shape_str(v));
  TORCH_CHECK_VALUE(d.M < (int64_t(1) << 31) && d.N < (int64_t(1) << 31) && d.D < (int64_t(1) << 31), op,
                    ": token counts and head dim must be < 2^31");
  return d;
}

inline void check_same_device(const at::Tensor& t, const at::Tensor& q, const char* op, const char* name) {
  TORCH_CHECK_VALUE(t.device() == q.device(), op, ": ", name, ": expected device ", q.device(), " (same as q), got ",
                    t.device());
}

inline void check_mask(const c10::optional<at::Tensor>& mask, const at::Tensor& q, const Dims& d, const char* op) {
  if (!mask.has_value() || !mask->defined()) return;
  TORCH_CHECK_TYPE(mask->scalar_type() == at::kBool, op, ": key_padding_mask: expected dtype bool, got ",
                   mask->scalar_type());
  TORCH_CHECK_VALUE(mask->dim() == 2 && mask->size(0) == d.B && mask->size(1) == d.M, op,
                    ": key_padding_mask: expected shape [B=", d.B, ", M=", d.M, "], got ", shape_str(*mask));
  check_same_device(*mask, q, op, "key_padding_mask");
}

inline at::ScalarType acc_dtype(const at::Tensor& q) {
  return q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// FDA coefficients: one optional tensor coef [3, H] (rows alpha, beta, delta; one value per head) in the
// accumulation dtype (float32; float64 for float64 inputs), on q's device: the convention of every fused
// backend (the Triton op takes the same tensor). Returns true when given.
inline bool check_coef(const c10::optional<at::Tensor>& coef, const at::Tensor& q, const Dims& d, const char* op) {
  if (!coef.has_value() || !coef->defined()) return false;
  TORCH_CHECK_TYPE(coef->scalar_type() == acc_dtype(q), op, ": coef: expected dtype ", acc_dtype(q),
                   " (float64 for float64 inputs, else float32), got ", coef->scalar_type());
  TORCH_CHECK_VALUE(coef->dim() == 2 && coef->size(0) == 3 && coef->size(1) == d.H, op,
                    ": coef: expected shape [3, H=", d.H, "] (rows alpha, beta, delta), got ", shape_str(*coef));
  check_same_device(*coef, q, op, "coef");
  return true;
}

inline void check_like(const at::Tensor& t, const at::Tensor& ref, const char* op, const char* name) {
  TORCH_CHECK_VALUE(t.defined(), op, ": ", name, " must be defined");
  TORCH_CHECK_VALUE(t.sizes() == ref.sizes(), op, ": ", name, ": expected shape ", shape_str(ref), ", got ",
                    shape_str(t));
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), op, ": ", name, ": expected dtype ", ref.scalar_type(),
                   ", got ", t.scalar_type());
  check_same_device(t, ref, op, name);
}

// Saved tensors of the forward, checked again in backward (a direct call may pass anything).
inline void check_saved(const at::Tensor& grad_out, const at::Tensor& q, const at::Tensor& out, const at::Tensor& lse,
                        const Dims& d, const char* op) {
  check_like(grad_out, q, op, "grad_out");
  check_like(out, q, op, "out");
  TORCH_CHECK_VALUE(lse.defined() && lse.dim() == 3 && lse.size(0) == d.B && lse.size(1) == d.H && lse.size(2) == d.N,
                    op, ": lse: expected shape [B=", d.B, ", H=", d.H, ", N=", d.N, "], got ",
                    lse.defined() ? shape_str(lse) : std::string("undefined"));
  TORCH_CHECK_TYPE(lse.scalar_type() == acc_dtype(q), op,
                   ": lse: expected dtype ", (q.scalar_type() == at::kDouble ? "float64" : "float32"), ", got ",
                   lse.scalar_type());
  check_same_device(lse, q, op, "lse");
}

inline void check_index(const at::Tensor& index, const Dims& d, const char* op) {
  TORCH_CHECK_TYPE(index.defined() && index.scalar_type() == at::kInt, op,
                   ": index: expected an int32 tensor [B, H, N, K] (as returned by the forward)");
  TORCH_CHECK_VALUE(index.dim() == 4 && index.size(0) == d.B && index.size(1) == d.H && index.size(2) == d.N &&
                        index.size(3) <= d.M,
                    op, ": index: expected shape [B=", d.B, ", H=", d.H, ", N=", d.N, ", K<=", d.M, "], got ",
                    shape_str(index));
}

// Candidate-elimination arguments of ce_attention (shared by the CPU and CUDA entry points): a
// self-attention (N == M), num_template in [1, N-1], keep in [1, Ls], topk 0 (dense) or >= 1, and
// template_index a non-empty 1-D int64 tensor on q's device. Its values are checked by the CPU entry
// point; the CUDA kernel skips out-of-range rows (validating them would cost a device sync; the
// Python entry points validate them).
inline void check_ce(const at::Tensor& q, const Dims& d, int64_t num_template, int64_t keep,
                     const at::Tensor& template_index, int64_t topk, const char* op) {
  TORCH_CHECK_VALUE(topk >= 0, op, ": topk: expected 0 (dense) or an int >= 1, got ", topk);
  TORCH_CHECK_VALUE(d.N == d.M, op, ": candidate elimination needs a self-attention with M == N, got N=", d.N,
                    ", M=", d.M);
  TORCH_CHECK_VALUE(num_template >= 1 && num_template < d.N, op, ": num_template: expected an int in [1, N-1=",
                    d.N - 1, "], got ", num_template);
  TORCH_CHECK_VALUE(keep >= 1 && keep <= d.N - num_template, op, ": keep: expected an int in [1, Ls=",
                    d.N - num_template, "], got ", keep);
  TORCH_CHECK_TYPE(template_index.defined() && template_index.scalar_type() == at::kLong, op,
                   ": template_index: expected an int64 tensor");
  TORCH_CHECK_VALUE(template_index.dim() == 1 && template_index.numel() >= 1, op,
                    ": template_index: expected a non-empty 1-D tensor, got shape ", shape_str(template_index));
  check_same_device(template_index, q, op, "template_index");
}

inline int64_t index_width(int64_t topk, int64_t M) { return topk < M ? topk : M; }

}  // namespace vtrack

namespace vtrack {
// The coefficient gradient dcoef [3, H] (coef's dtype) from the per-(batch, head) partial sums [B,H,3];
// an empty tensor of the accumulation dtype when FDA is off. Shared by the CPU and CUDA backward.
at::Tensor fda_coef_grad(const at::Tensor& partial, const c10::optional<at::Tensor>& coef, const at::Tensor& q);

// score [B,Ls] (float32; float64 for float64) and keep_index [B,keep] int64 (descending score, ties toward
// the lower index) from the CE probabilities [B,H,T,Ls]. Defined in cpu/attention_cpu.cpp.
std::tuple<at::Tensor, at::Tensor> ce_score_from_probs(const at::Tensor& ce_probs, int64_t keep);
}  // namespace vtrack
