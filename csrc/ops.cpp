// Schemas of the vtrack operators (one TORCH_LIBRARY for the whole extension).
//
// The CPU kernels live in cpu/attention_cpu.cpp and cpu/crop_cpu.cpp (TORCH_LIBRARY_IMPL(vtrack, CPU, m)) and the CUDA
// kernels in cuda/attention_cuda.cu (TORCH_LIBRARY_IMPL(vtrack, CUDA, m)). Fake (meta) kernels and
// autograd formulas are registered from Python in vtrack/kernels/cpp_ops.py.
//
// Conventions shared by every op:
//   q [B,H,N,D]; k, v [B,H,M,D]; out [B,H,N,D]; key_padding_mask bool [B,M] (True = ignore key).
//   lse [B,H,N]: float32 (float64 for float64 inputs) row log-sum-exp of the kept logits; +inf marks a
//     row with no valid key (its output and gradients are zero).
//   coef: the optional FDA coefficients as one tensor [3, H] (rows alpha, beta, delta), float32 (float64 for
//     float64 inputs) (None: no FDA bias).
//   index [B,H,N,K] int32, K = min(topk, M): the kept key indices of each row in ascending order,
//     padded with -1 when fewer than K keys are valid.
//   dcoef: the coefficient gradient [3, H] in coef's dtype (an empty float32/float64 tensor without coef).
// These schemas are the fused backends' one op schema: vtrack/kernels/fused.py SCHEMAS holds the same text, and
// the Triton backend registers the same ops as vtrack::triton_<op> (tests/test_kernels_triton.py compares them).
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(vtrack, m) {
  // Top-K sparse attention (SparseTT), optionally with the FDA bias on the logits.
  m.def(
      "topk_attention(Tensor q, Tensor k, Tensor v, int topk, float scale, Tensor? key_padding_mask=None, "
      "Tensor? coef=None) -> (Tensor out, Tensor lse, Tensor index)");
  m.def(
      "topk_attention_backward(Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, "
      "Tensor index, float scale, Tensor? coef=None) -> (Tensor dq, Tensor dk, Tensor dv, Tensor dcoef)");
  // Force-directed attention (ESAT); without coef it is dense attention.
  m.def(
      "fda_attention(Tensor q, Tensor k, Tensor v, float scale, Tensor? key_padding_mask=None, Tensor? coef=None) "
      "-> (Tensor out, Tensor lse)");
  m.def(
      "fda_attention_backward(Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, "
      "float scale, Tensor? key_padding_mask=None, Tensor? coef=None) -> (Tensor dq, Tensor dk, Tensor dv, "
      "Tensor dcoef)");
  // Candidate elimination (OSTrack) fused with the attention: N == M = num_template + Ls tokens.
  // topk=0 means dense; score [B,Ls] (lse's dtype) and keep_index [B,keep] int64 carry no gradient.
  // Its backward is topk_attention_backward (topk > 0) or fda_attention_backward (topk == 0).
  m.def(
      "ce_attention(Tensor q, Tensor k, Tensor v, int num_template, int keep, Tensor template_index, "
      "float scale, int topk=0, Tensor? key_padding_mask=None, Tensor? coef=None) -> (Tensor out, Tensor lse, "
      "Tensor index, Tensor score, Tensor keep_index)");
  // The exact bilinear crop of vtrack.tracking.crops (cpu/crop_cpu.cpp): image uint8 [H,W,C]; the row taps
  // rows0/rows1 int64 [oh] with float32 weights wy0/wy1, the column taps likewise [ow]; fill float32 [C]: the
  // colour that takes the weight of taps outside the image (None: none). Returns float32 [oh, ow, C].
  m.def(
      "bilinear_crop(Tensor image, Tensor rows0, Tensor rows1, Tensor wy0, Tensor wy1, Tensor cols0, "
      "Tensor cols1, Tensor wx0, Tensor wx1, Tensor? fill=None) -> Tensor");
}

// `import vtrack._C` loads this library (which registers the ops above); the module itself is empty.
static struct PyModuleDef vtrack_c_module = {PyModuleDef_HEAD_INIT, "_C", "vtrack C++/CUDA operators", -1, nullptr};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&vtrack_c_module); }
