// Op entry points of the CPU kernels (float32 and float64): argument checks, output allocation, and
// the run-time choice of the kernel engine's instruction set (select_kernels). The engine itself is
// csrc/cpu/engine_impl.h, compiled once per ISA by isa_avx512.cpp, isa_avx2.cpp and isa_baseline.cpp;
// this file is compiled for the build's baseline ISA (no -march flag), so one build runs on any x86-64
// CPU and takes the widest vector path the CPU has (override: VTRACK_CPU_ISA, vtrack::cpu_isa).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <atomic>
#include <mutex>
#include <string>

#include "kernel_api.h"

namespace vtrack {
namespace cpu {
namespace {

// ---------------------------------------------------------------------------------------------
// Run-time choice of the engine's instruction set
// ---------------------------------------------------------------------------------------------

// ISA paths from the widest down; each needs every feature listed (checked with CPUID through
// __builtin_cpu_supports, which also checks that the OS saves the vector registers).
bool cpu_has(const std::string& isa) {
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
  __builtin_cpu_init();
  if (isa == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
  if (isa == "avx512bf16") return cpu_has("avx512") && __builtin_cpu_supports("avx512bf16");
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return isa == "baseline";
}

const KernelTable* table_of(const std::string& isa) {
  if (isa == "avx512bf16") return avx512bf16::kernel_table();
  if (isa == "avx512") return avx512::kernel_table();
  if (isa == "avx2") return avx2::kernel_table();
  if (isa == "baseline") return baseline::kernel_table();
  return nullptr;
}

const char* const kIsaOrder[] = {"avx512bf16", "avx512", "avx2", "baseline"};

// The ISA paths this CPU can run and this build has, widest first.
std::vector<std::string> supported_isas() {
  std::vector<std::string> out;
  for (const char* isa : kIsaOrder)
    if (table_of(isa) != nullptr && cpu_has(isa)) out.emplace_back(isa);
  return out;
}

std::string supported_str() {
  std::string s;
  for (const auto& isa : supported_isas()) s += (s.empty() ? "" : ", ") + isa;
  return s;
}

// The table for a request: "auto" (or empty) = the widest supported; else that ISA, which must be supported.
const KernelTable* resolve_isa(const std::string& request, const char* what) {
  if (request.empty() || request == "auto") return table_of(supported_isas().front());
  TORCH_CHECK_VALUE(table_of(request) != nullptr, what,
                    ": expected one of auto, avx512bf16, avx512, avx2, baseline, got '",
                    request, "'");
  TORCH_CHECK_VALUE(cpu_has(request) && table_of(request) != nullptr, what, ": ISA path '", request,
                    "' is not supported on this CPU/build (supported: ", supported_str(), ")");
  return table_of(request);
}

std::atomic<const KernelTable*> g_kernels{nullptr};
std::mutex g_kernels_mutex;

// The kernels in use: chosen on first use from VTRACK_CPU_ISA (default auto), changed by vtrack::cpu_isa.
const KernelTable& select_kernels() {
  const KernelTable* t = g_kernels.load(std::memory_order_acquire);
  if (t != nullptr) return *t;
  std::lock_guard<std::mutex> lock(g_kernels_mutex);
  t = g_kernels.load(std::memory_order_relaxed);
  if (t == nullptr) {
    const char* env = std::getenv("VTRACK_CPU_ISA");
    t = resolve_isa(env != nullptr ? env : "", "VTRACK_CPU_ISA");
    g_kernels.store(t, std::memory_order_release);
  }
  return *t;
}

// vtrack::cpu_isa(request=""): the ISA path in use; a non-empty request ("auto", "avx512bf16", "avx512",
// "avx2", "baseline") switches to it first (for tests and benchmarks).
std::string cpu_isa(c10::string_view request) {
  const std::string req(request.data(), request.size());
  if (!req.empty()) {
    const KernelTable* t = resolve_isa(req, "vtrack::cpu_isa");
    std::lock_guard<std::mutex> lock(g_kernels_mutex);
    g_kernels.store(t, std::memory_order_release);
  }
  return select_kernels().name;
}

// vtrack::cpu_isa_supported(): the ISA paths this CPU and build can run, widest first.
std::vector<std::string> cpu_isa_supported() { return supported_isas(); }

// vtrack::cpu_bf16_path(): how a bfloat16 call computes on the ISA path in use now: "bf16-amx" (AMX-BF16 tile
// products), "bf16-dot" (vdpbf16ps) or "widened-f32" (the float32 engine on widened inputs).
std::string cpu_bf16_path() {
  const KernelTable& t = select_kernels();
  if (t.forward_bf16 == nullptr) return "widened-f32";
  return t.amx_bf16 && amx_enabled() ? "bf16-amx" : "bf16-dot";
}

// vtrack::cpu_amx_status(): "" when the AMX path is on, else why not (the CPU, the OS, VTRACK_CPU_AMX=0, or a
// build whose compiler could not emit AMX).
std::string cpu_amx_status() {
  const KernelTable* bf = table_of("avx512bf16");
  if (bf != nullptr && !bf->amx_bf16) return "this build has no AMX kernels (its compiler predates GCC 11 / Clang 12)";
  return amx_why_not();
}

// vtrack::cpu_amx_uses(): how many times a worker thread configured AMX tiles (a kernel ran tile products).
int64_t cpu_amx_uses() { return amx_uses(); }

template <typename T>
ForwardFn<T> kernel_forward(const KernelTable& t) {
  if constexpr (std::is_same<T, float>::value) return t.forward_f32;
  else return t.forward_f64;
}

template <typename T>
BackwardFn<T> kernel_backward(const KernelTable& t) {
  if constexpr (std::is_same<T, float>::value) return t.backward_f32;
  else return t.backward_f64;
}

// ---------------------------------------------------------------------------------------------
// Op entry points
// ---------------------------------------------------------------------------------------------

void check_cpu(const at::Tensor& q, const char* op) {
  TORCH_CHECK_VALUE(q.device().is_cpu(), op, ": expected CPU tensors, got ", q.device());
  const auto t = q.scalar_type();
  TORCH_CHECK_TYPE(t == at::kFloat || t == at::kDouble || t == at::kBFloat16 || t == at::kHalf, op,
                   ": the CPU kernels support float32, float64, bfloat16 and float16, got ", t);
}

// bfloat16/float16 run the float32 engine: inputs are widened exactly (every bf16/fp16 value is a
// float32), all products, the softmax and the accumulation are float32, and the outputs are rounded
// once to the input dtype (lse, score and the coefficient gradients stay float32, as for float32).
// Exception: on the avx512bf16 path the bfloat16 forward (KernelTable::forward_bf16) reads the bf16 inputs
// as they are and runs Q.K^T and P.V with bf16 dot products (float32 accumulation), and the backward
// (backward_bf16) reads them as they are too (widening one head at a time in the kernel) and runs the dense
// rows' five block products with them.
bool low_precision(const at::Tensor& q) { return q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf; }

at::Tensor compute_view(const at::Tensor& t, bool widen) {
  return widen ? t.to(at::kFloat).contiguous() : t.contiguous();
}

Problem make_problem(const Dims& d, double scale, const at::Tensor* mask, int64_t topk,
                     const c10::optional<at::Tensor>& coef, bool fda, const char* op) {
  TORCH_CHECK_VALUE(std::isfinite(scale), op, ": scale: expected a finite float, got ", scale);
  TORCH_CHECK_VALUE(topk >= 0, op, ": topk: expected an int >= 1, got ", topk);
  Problem pb;
  pb.d = d;
  pb.scale = scale;
  pb.topk = topk;
  pb.K = topk > 0 ? index_width(topk, d.M) : 0;
  pb.fda = fda;
  if (fda) {  // coef [3, H]: rows alpha, beta, delta
    const at::Tensor c = coef->detach().to(at::kDouble).contiguous();
    const double* p = c.data_ptr<double>();
    pb.alpha.assign(p, p + d.H);
    pb.beta.assign(p + d.H, p + 2 * d.H);
    pb.delta.assign(p + 2 * d.H, p + 3 * d.H);
  }
  pb.mask = mask != nullptr ? mask->data_ptr<bool>() : nullptr;
  pb.nvalid.assign(static_cast<size_t>(d.B), d.M);
  if (pb.mask != nullptr)
    for (int64_t b = 0; b < d.B; ++b)
      pb.nvalid[b] = d.M - std::count(pb.mask + b * d.M, pb.mask + (b + 1) * d.M, true);
  return pb;
}

struct FwdResult {
  at::Tensor out, lse, index, ce_probs;
};

FwdResult run_forward(const at::Tensor& q_, const at::Tensor& k_, const at::Tensor& v_, double scale, int64_t topk,
                      const c10::optional<at::Tensor>& mask_, const c10::optional<at::Tensor>& coef,
                      int64_t num_template, const std::vector<int64_t>& template_rows, const char* op) {
  const Dims d = check_qkv(q_, k_, v_, op);
  check_cpu(q_, op);
  check_mask(mask_, q_, d, op);
  const bool fda = check_coef(coef, q_, d, op);
  const KernelTable& kernels = select_kernels();
  const bool bf16_dot = q_.scalar_type() == at::kBFloat16 && kernels.forward_bf16 != nullptr;
  const bool widen = low_precision(q_) && !bf16_dot;
  at::Tensor q = compute_view(q_, widen), k = compute_view(k_, widen), v = compute_view(v_, widen);
  const auto fopts = q.options().dtype(bf16_dot ? at::kFloat : q.scalar_type());  // the engine's dtype
  at::Tensor mask;
  if (mask_.has_value() && mask_->defined()) mask = mask_->contiguous();
  Problem pb = make_problem(d, scale, mask.defined() ? &mask : nullptr, topk, coef, fda, op);
  at::Tensor mask_t = mask.defined() ? mask.to(fopts.dtype()).contiguous() : at::Tensor();
  pb.mask_t = mask_t.defined() ? mask_t.data_ptr() : nullptr;
  pb.num_template = num_template;
  pb.template_rows = template_rows;
  pb.amx = bf16_dot && kernels.amx_bf16 && amx_enabled();  // AMX-BF16 tile products after the run-time check
  FwdResult r;
  const int64_t nT = static_cast<int64_t>(template_rows.size());
  const int64_t Ls = num_template > 0 ? d.M - num_template : 0;
  r.ce_probs = at::zeros({d.B, d.H, nT, Ls}, fopts);
  if (d.B == 0 || d.H == 0 || d.N == 0 || d.M == 0 || d.D == 0) {  // no valid key anywhere: zero rows
    r.out = at::zeros_like(q_, at::MemoryFormat::Contiguous);
    r.lse = at::full({d.B, d.H, d.N}, std::numeric_limits<double>::infinity(), q.options().dtype(acc_dtype(q)));
    r.index = at::full({d.B, d.H, d.N, pb.K}, -1, q.options().dtype(at::kInt));
    return r;
  }
  // The kernel writes every element of these (no zero-fill pass).
  r.out = at::empty(q.sizes(), fopts);
  r.lse = at::empty({d.B, d.H, d.N}, q.options().dtype(acc_dtype(q)));
  r.index = at::empty({d.B, d.H, d.N, pb.K}, q.options().dtype(at::kInt));
  if (bf16_dot) {
    const auto bits = [](const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); };
    kernels.forward_bf16(pb, bits(q), bits(k), bits(v), r.out.data_ptr<float>(), r.lse.data_ptr<float>(),
                         pb.K > 0 ? r.index.data_ptr<int32_t>() : nullptr,
                         nT > 0 ? r.ce_probs.data_ptr<float>() : nullptr);
  } else {
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "vtrack_cpu_forward", [&] {
      kernel_forward<scalar_t>(kernels)(pb, q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
                                        r.out.data_ptr<scalar_t>(), r.lse.data_ptr<scalar_t>(),
                                        pb.K > 0 ? r.index.data_ptr<int32_t>() : nullptr,
                                        nT > 0 ? r.ce_probs.data_ptr<scalar_t>() : nullptr);
    });
  }
  if (widen || bf16_dot) r.out = r.out.to(q_.scalar_type());
  return r;
}

using Grads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;  // dq, dk, dv, dcoef [3, H]

Grads run_backward(const at::Tensor& grad_out, const at::Tensor& q_, const at::Tensor& k_, const at::Tensor& v_,
                   const at::Tensor& out, const at::Tensor& lse, const at::Tensor* index, double scale,
                   const c10::optional<at::Tensor>& mask_, const c10::optional<at::Tensor>& coef, const char* op) {
  const Dims d = check_qkv(q_, k_, v_, op);
  check_cpu(q_, op);
  check_saved(grad_out, q_, out, lse, d, op);
  check_mask(mask_, q_, d, op);
  const bool fda = check_coef(coef, q_, d, op);
  if (index != nullptr) check_index(*index, d, op);
  const KernelTable& kernels = select_kernels();
  const bool bf16_dot = q_.scalar_type() == at::kBFloat16 && kernels.backward_bf16 != nullptr;
  const bool widen = low_precision(q_) && !bf16_dot;
  at::Tensor q = compute_view(q_, widen), k = compute_view(k_, widen), v = compute_view(v_, widen);
  at::Tensor go = compute_view(grad_out, widen), o = compute_view(out, widen), l = lse.contiguous();
  const auto fopts = q.options().dtype(bf16_dot ? at::kFloat : q.scalar_type());  // the engine's dtype
  at::Tensor idx = index != nullptr ? index->contiguous() : at::Tensor();
  at::Tensor mask;
  if (mask_.has_value() && mask_->defined()) mask = mask_->contiguous();
  const int64_t topk = index != nullptr ? std::max<int64_t>(index->size(3), 1) : 0;
  Problem pb = make_problem(d, scale, mask.defined() ? &mask : nullptr, topk, coef, fda, op);
  at::Tensor mask_t = mask.defined() ? mask.to(fopts.dtype()).contiguous() : at::Tensor();
  pb.mask_t = mask_t.defined() ? mask_t.data_ptr() : nullptr;
  if (index != nullptr) pb.K = index->size(3);
  pb.amx = bf16_dot && kernels.amx_bf16 && amx_enabled();  // AMX-BF16 tile products after the run-time check
  const bool work = d.B > 0 && d.H > 0 && d.N > 0 && d.M > 0 && d.D > 0 && (index == nullptr || pb.K > 0);
  // With work to do the kernel writes every element of dq, dk and dv.
  at::Tensor dq = work ? at::empty(q.sizes(), fopts) : at::zeros(q.sizes(), fopts);
  at::Tensor dk = work ? at::empty(k.sizes(), fopts) : at::zeros(k.sizes(), fopts);
  at::Tensor dv = work ? at::empty(v.sizes(), fopts) : at::zeros(v.sizes(), fopts);
  at::Tensor dcoef = at::zeros({d.B, d.H, 3}, q.options().dtype(at::kDouble));
  if (work && bf16_dot) {
    const auto bits = [](const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); };
    kernels.backward_bf16(pb, bits(q), bits(k), bits(v), bits(o), l.data_ptr<float>(),
                          idx.defined() ? idx.data_ptr<int32_t>() : nullptr, bits(go), dq.data_ptr<float>(),
                          dk.data_ptr<float>(), dv.data_ptr<float>(), dcoef.data_ptr<double>());
  } else if (work) {
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "vtrack_cpu_backward", [&] {
      const BackwardFn<scalar_t> fn = kernel_backward<scalar_t>(kernels);
      fn(pb, q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), o.data_ptr<scalar_t>(),
         l.data_ptr<scalar_t>(), idx.defined() ? idx.data_ptr<int32_t>() : nullptr, go.data_ptr<scalar_t>(),
         dq.data_ptr<scalar_t>(), dk.data_ptr<scalar_t>(), dv.data_ptr<scalar_t>(), dcoef.data_ptr<double>());
    });
  }
  at::Tensor dc = fda_coef_grad(dcoef, coef, dq);
  if (widen || bf16_dot) return {dq.to(q_.scalar_type()), dk.to(q_.scalar_type()), dv.to(q_.scalar_type()), dc};
  return {dq, dk, dv, dc};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> topk_attention_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t topk, double scale,
    const c10::optional<at::Tensor>& mask, const c10::optional<at::Tensor>& coef) {
  TORCH_CHECK_VALUE(topk >= 1, "vtrack::topk_attention: topk: expected an int >= 1, got ", topk);
  FwdResult r = run_forward(q, k, v, scale, topk, mask, coef, 0, {}, "vtrack::topk_attention");
  return {r.out, r.lse, r.index};
}

Grads topk_attention_backward_cpu(const at::Tensor& grad_out, const at::Tensor& q, const at::Tensor& k,
                                  const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
                                  const at::Tensor& index, double scale, const c10::optional<at::Tensor>& coef) {
  return run_backward(grad_out, q, k, v, out, lse, &index, scale, c10::nullopt, coef,
                      "vtrack::topk_attention_backward");
}

std::tuple<at::Tensor, at::Tensor> fda_attention_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                     double scale, const c10::optional<at::Tensor>& mask,
                                                     const c10::optional<at::Tensor>& coef) {
  FwdResult r = run_forward(q, k, v, scale, 0, mask, coef, 0, {}, "vtrack::fda_attention");
  return {r.out, r.lse};
}

Grads fda_attention_backward_cpu(const at::Tensor& grad_out, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse, double scale,
                                 const c10::optional<at::Tensor>& mask, const c10::optional<at::Tensor>& coef) {
  return run_backward(grad_out, q, k, v, out, lse, nullptr, scale, mask, coef, "vtrack::fda_attention_backward");
}

// The template rows as host values, each checked to be in [0, num_template) (the other CE arguments are
// checked by the shared check_ce).
std::vector<int64_t> template_rows_of(const at::Tensor& template_index, int64_t num_template, const char* op) {
  at::Tensor t = template_index.to(at::kCPU).contiguous();
  std::vector<int64_t> rows(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  for (int64_t r : rows)
    TORCH_CHECK_VALUE(r >= 0 && r < num_template, op, ": template_index: expected indices in [0, num_template=",
                      num_template, "), got ", r);
  return rows;
}

}  // namespace

}  // namespace cpu

// Shared with the CUDA file (declared in checks.h).
at::Tensor fda_coef_grad(const at::Tensor& partial, const c10::optional<at::Tensor>& coef, const at::Tensor& q) {
  if (!coef.has_value() || !coef->defined()) return at::empty({0}, q.options().dtype(acc_dtype(q)));
  return partial.sum(0).t().to(coef->scalar_type()).contiguous();  // [B,H,3] -> [3,H]
}

std::tuple<at::Tensor, at::Tensor> ce_score_from_probs(const at::Tensor& ce_probs, int64_t keep) {
  at::Tensor score = ce_probs.to(ce_probs.scalar_type() == at::kDouble ? at::kDouble : at::kFloat).mean({1, 2});
  at::Tensor keep_index =
      std::get<1>(at::sort(score, /*stable=*/true, /*dim=*/-1, /*descending=*/true)).narrow(1, 0, keep).contiguous();
  return {score, keep_index};
}

namespace cpu {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> ce_attention_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t num_template, int64_t keep,
    const at::Tensor& template_index, double scale, int64_t topk, const c10::optional<at::Tensor>& mask,
    const c10::optional<at::Tensor>& coef) {
  const char* op = "vtrack::ce_attention";
  const Dims d = check_qkv(q, k, v, op);
  check_ce(q, d, num_template, keep, template_index, topk, op);
  std::vector<int64_t> rows = template_rows_of(template_index, num_template, op);
  FwdResult r = run_forward(q, k, v, scale, topk, mask, coef, num_template, rows, op);
  auto [score, keep_index] = ce_score_from_probs(r.ce_probs, keep);
  return {r.out, r.lse, r.index, score, keep_index};
}

}  // namespace
}  // namespace cpu
}  // namespace vtrack

TORCH_LIBRARY_IMPL(vtrack, CPU, m) {
  m.impl("topk_attention", &vtrack::cpu::topk_attention_cpu);
  m.impl("topk_attention_backward", &vtrack::cpu::topk_attention_backward_cpu);
  m.impl("fda_attention", &vtrack::cpu::fda_attention_cpu);
  m.impl("fda_attention_backward", &vtrack::cpu::fda_attention_backward_cpu);
  m.impl("ce_attention", &vtrack::cpu::ce_attention_cpu);
}

TORCH_LIBRARY_FRAGMENT(vtrack, m) {
  m.def("cpu_isa(str request='') -> str", &vtrack::cpu::cpu_isa);
  m.def("cpu_isa_supported() -> str[]", &vtrack::cpu::cpu_isa_supported);
  m.def("cpu_bf16_path() -> str", &vtrack::cpu::cpu_bf16_path);
  m.def("cpu_amx_status() -> str", &vtrack::cpu::cpu_amx_status);
  m.def("cpu_amx_uses() -> int", &vtrack::cpu::cpu_amx_uses);
}
