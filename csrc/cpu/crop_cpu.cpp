// vtrack::bilinear_crop, the CPU kernel of vtrack.tracking.crops.sample_target (the exact float
// bilinear crop shared by training, the PyTorch trackers and the onnxruntime trackers).
//
// The sampling geometry (tap indices, weights, what is inside the image) is computed in Python
// (vtrack/tracking/crops.py, _taps) and passed in: this kernel only forms the weighted sums, in
// float32 and in exactly the order of the NumPy path there, so the two give bit-identical patches:
//   out[v, u, c] = (img[r0, c0, c] * wx0 + img[r0, c1, c] * wx1) * wy0
//                + (img[r1, c0, c] * wx0 + img[r1, c1, c] * wx1) * wy1      (r* = rows*[v], c* = cols*[u])
//   and with fill: out += (1 - (wy0 + wy1) * (wx0 + wx1)) * fill[c]  (the weight of taps outside the image)
// every product and sum rounded to float32 (no fused multiply-add: contraction is switched off below).
// The column pass (inner bracket) of a source row is computed once and reused by the output rows
// that read that row (neighbouring output rows share source rows whenever the crop is upscaled).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <torch/library.h>
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace {

void check_taps(const at::Tensor& idx, const at::Tensor& w0, const at::Tensor& w1, int64_t size, const char* axis) {
  TORCH_CHECK(idx.scalar_type() == at::kLong && idx.dim() == 1 && idx.is_contiguous(),
              "bilinear_crop: ", axis, " indices must be contiguous int64 [n]");
  TORCH_CHECK(w0.scalar_type() == at::kFloat && w1.scalar_type() == at::kFloat && w0.dim() == 1 && w1.dim() == 1 &&
                  w0.is_contiguous() && w1.is_contiguous() && w0.size(0) == idx.size(0) && w1.size(0) == idx.size(0),
              "bilinear_crop: ", axis, " weights must be contiguous float32 [n] like the indices");
  const int64_t* p = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < idx.size(0); ++i) {
    TORCH_CHECK(p[i] >= 0 && p[i] < size, "bilinear_crop: ", axis, " index ", p[i], " outside [0, ", size, ")");
  }
}

// Column pass of one source row: dst[u * C + c] = row[c0[u], c] * wx0[u] + row[c1[u], c] * wx1[u].
void column_pass(const uint8_t* row, const int64_t* c0, const int64_t* c1, const float* wx0, const float* wx1,
                 int64_t n, int64_t C, float* dst) {
  for (int64_t u = 0; u < n; ++u) {
    const uint8_t* a = row + c0[u] * C;
    const uint8_t* b = row + c1[u] * C;
    const float x0 = wx0[u], x1 = wx1[u];
    for (int64_t c = 0; c < C; ++c) {
      const float s = static_cast<float>(a[c]) * x0;
      const float t = static_cast<float>(b[c]) * x1;
      dst[u * C + c] = s + t;
    }
  }
}

// The cached column pass of source row `r` (two slots: an output row reads two source rows).
struct RowCache {
  std::vector<float> buf[2];
  int64_t key[2] = {-1, -1};
  int next = 0;
  const float* get(int64_t r, const uint8_t* img, int64_t stride, const int64_t* c0, const int64_t* c1,
                   const float* wx0, const float* wx1, int64_t n, int64_t C, int64_t keep) {
    for (int s = 0; s < 2; ++s) {
      if (key[s] == r) return buf[s].data();
    }
    int s = (key[next] == keep) ? 1 - next : next;  // never evict the row the caller still needs
    buf[s].resize(static_cast<size_t>(n * C));
    column_pass(img + r * stride, c0, c1, wx0, wx1, n, C, buf[s].data());
    key[s] = r;
    next = 1 - s;
    return buf[s].data();
  }
};

at::Tensor bilinear_crop(const at::Tensor& image, const at::Tensor& rows0, const at::Tensor& rows1,
                         const at::Tensor& wy0, const at::Tensor& wy1, const at::Tensor& cols0,
                         const at::Tensor& cols1, const at::Tensor& wx0, const at::Tensor& wx1,
                         const std::optional<at::Tensor>& fill) {
  TORCH_CHECK(image.device().is_cpu() && image.scalar_type() == at::kByte && image.dim() == 3 && image.is_contiguous(),
              "bilinear_crop: image must be a contiguous uint8 CPU tensor [H, W, C]");
  const int64_t H = image.size(0), W = image.size(1), C = image.size(2);
  check_taps(rows0, wy0, wy1, H, "row");
  check_taps(rows1, wy0, wy1, H, "row");
  check_taps(cols0, wx0, wx1, W, "column");
  check_taps(cols1, wx0, wx1, W, "column");
  const float* fv = nullptr;
  if (fill.has_value()) {
    TORCH_CHECK(fill->scalar_type() == at::kFloat && fill->dim() == 1 && fill->size(0) == C && fill->is_contiguous(),
                "bilinear_crop: fill must be contiguous float32 [C]");
    fv = fill->data_ptr<float>();
  }
  const int64_t oh = rows0.size(0), ow = cols0.size(0);
  at::Tensor out = at::empty({oh, ow, C}, image.options().dtype(at::kFloat));
  const uint8_t* img = image.data_ptr<uint8_t>();
  const int64_t *r0 = rows0.data_ptr<int64_t>(), *r1 = rows1.data_ptr<int64_t>();
  const int64_t *c0 = cols0.data_ptr<int64_t>(), *c1 = cols1.data_ptr<int64_t>();
  const float *y0 = wy0.data_ptr<float>(), *y1 = wy1.data_ptr<float>();
  const float *x0 = wx0.data_ptr<float>(), *x1 = wx1.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t n = ow * C;
  std::vector<float> missing_x(fv ? ow : 0);
  for (int64_t u = 0; u < (fv ? ow : 0); ++u) missing_x[u] = x0[u] + x1[u];
  RowCache cache;
  for (int64_t v = 0; v < oh; ++v) {
    const float* a = cache.get(r0[v], img, W * C, c0, c1, x0, x1, ow, C, -1);
    const float* b = cache.get(r1[v], img, W * C, c0, c1, x0, x1, ow, C, r0[v]);
    const float wa = y0[v], wb = y1[v];
    float* dst = o + v * n;
    for (int64_t i = 0; i < n; ++i) {
      const float s = a[i] * wa;
      const float t = b[i] * wb;
      dst[i] = s + t;
    }
    if (fv) {
      const float sy = wa + wb;
      for (int64_t u = 0; u < ow; ++u) {
        const float prod = sy * missing_x[u];
        const float m = 1.0f - prod;
        for (int64_t c = 0; c < C; ++c) {
          const float add = m * fv[c];
          dst[u * C + c] += add;
        }
      }
    }
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(vtrack, CPU, m) { m.impl("bilinear_crop", &bilinear_crop); }
