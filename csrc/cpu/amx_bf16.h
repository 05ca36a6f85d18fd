// AMX-BF16 block products of the bfloat16 kernels (TDPBF16PS tile products, float32 accumulation), included by
// engine_impl.h inside its VTRACK_ISA_BF16 section: only the avx512bf16 translation unit compiles them (its target
// string adds amx-tile,amx-bf16; the compiler never emits AMX instructions on its own, only these intrinsics do).
// They run only when Problem::amx is set, which attention_cpu.cpp sets only after the run-time check (CPUID
// amx_tile + amx_bf16, XCR0 tile state, Linux arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) granted) and
// unless VTRACK_CPU_AMX=0.
//
// The engine's pair-packed operands are AMX's layouts: a B tile (16 rows of 16 bf16 pairs, "VNNI") is 16 rows
// of KT2[d2][j] (Q.K^T) or VP[j2][x] (P.V), an A tile (16 rows of 32 bf16) is 16 rows of Qb[r][d2] or P2[r][j2].
// A tile's reduction is 16 pairs, so the AMX forward pads the pair dimension of its operands with zeros to a
// multiple of 16 (amx_pad): Qb's row stride and KT2's rows to D2p = amx_pad(D2), P2's row stride and VP's rows
// to amx_pad(M2) (zero pairs add exact zeros). Every tile is configured 16 rows x 64 bytes (palette 1), so one
// configuration serves both products; each at::parallel_for worker loads it at the start of its task range
// (AmxScope) and releases the tiles at the end.
#pragma once

#ifndef VTRACK_ISA_AMX
#define VTRACK_ISA_AMX 0
#endif

namespace amx {

constexpr int64_t kTile = 16;  // rows of a tile; 16 float32 columns of C, 16 bf16 pairs of A and B

// n rounded up to a multiple of 16 (the pair dims of the AMX operands).
constexpr int64_t pad(int64_t n) { return (n + kTile - 1) / kTile * kTile; }

#if VTRACK_ISA_AMX
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "the tile configuration is 64 bytes");

// Loads the one configuration (tmm0..7: 16 rows x 64 bytes) on construction when `on`, releases the tiles on
// destruction: one per worker thread and task range.
class Scope {
 public:
  explicit Scope(bool on) : on_(on) {
    if (!on_) return;
    TileConfig cfg;
    std::memset(&cfg, 0, sizeof(cfg));
    cfg.palette_id = 1;
    for (int t = 0; t < 8; ++t) {
      cfg.colsb[t] = 64;
      cfg.rows[t] = kTile;
    }
    _tile_loadconfig(&cfg);
    note_amx_use();
  }
  ~Scope() {
    if (on_) _tile_release();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  bool on_;
};

// qk_tiles for the 32 (two row tiles) or 16 (nr <= 16) rows of Qb.
inline void qk_tiles32(const uint32_t* __restrict__ Qb, int64_t ldq, int64_t nr, int64_t D2p,
                       const uint32_t* __restrict__ KT2, int64_t Mp, float* __restrict__ S, int64_t ldS) {
  const int64_t sa = ldq * 4, sb = Mp * 4, sc = ldS * 4;
  const bool two = nr > kTile;
  int64_t j0 = 0;
  for (; j0 + 2 * kTile <= Mp; j0 += 2 * kTile) {
    _tile_zero(0);
    _tile_zero(1);
    if (two) {
      _tile_zero(2);
      _tile_zero(3);
    }
    for (int64_t k = 0; k < D2p; k += kTile) {
      _tile_loadd(4, Qb + k, sa);
      _tile_loadd(6, KT2 + k * Mp + j0, sb);
      _tile_loadd(7, KT2 + k * Mp + j0 + kTile, sb);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      if (two) {
        _tile_loadd(5, Qb + kTile * ldq + k, sa);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    _tile_stored(0, S + j0, sc);
    _tile_stored(1, S + j0 + kTile, sc);
    if (two) {
      _tile_stored(2, S + kTile * ldS + j0, sc);
      _tile_stored(3, S + kTile * ldS + j0 + kTile, sc);
    }
  }
  if (j0 < Mp) {  // the last 16 columns
    _tile_zero(0);
    if (two) _tile_zero(2);
    for (int64_t k = 0; k < D2p; k += kTile) {
      _tile_loadd(4, Qb + k, sa);
      _tile_loadd(6, KT2 + k * Mp + j0, sb);
      _tile_dpbf16ps(0, 4, 6);
      if (two) {
        _tile_loadd(5, Qb + kTile * ldq + k, sa);
        _tile_dpbf16ps(2, 5, 6);
      }
    }
    _tile_stored(0, S + j0, sc);
    if (two) _tile_stored(2, S + kTile * ldS + j0, sc);
  }
}

// S[r][0:Mp] = Q[r] . K^T for the rows r < nr of Qb (row stride ldq pairs, a multiple of 16 >= D2p) from KT2
// [D2p][Mp] (D2p = pad(D2) rows, the rows past D2 zero; Mp a multiple of 16). The rows from nr up to the next
// multiple of 16 are computed from whatever Qb holds there (it must be readable) and stored to S, which must
// have those rows (stride ldS); the callers leave them unused.
inline void qk_tiles(const uint32_t* __restrict__ Qb, int64_t ldq, int64_t nr, int64_t D2p,
                     const uint32_t* __restrict__ KT2, int64_t Mp, float* __restrict__ S, int64_t ldS) {
  for (int64_t r0 = 0; r0 < nr; r0 += 2 * kTile)
    qk_tiles32(Qb + r0 * ldq, ldq, nr - r0, D2p, KT2, Mp, S + r0 * ldS, ldS);
}

// O[r0 + r][x0 : x0 + 16 nc] = f[r0 + r] * C[r] (f != nullptr) or += C[r] (f == nullptr) for r < rows, from the
// tiles 0..(nc-1) (rows r0..r0+15) or 2..(2+nc-1) (second == true).
inline void store_rows(bool second, int nc, int64_t rows, int64_t r0, int64_t x0, int64_t D,
                       const float* __restrict__ f, float* __restrict__ O) {
  alignas(64) float buf[2][kTile * kTile];
  if (second) {
    _tile_stored(2, buf[0], 64);
    if (nc == 2) _tile_stored(3, buf[1], 64);
  } else {
    _tile_stored(0, buf[0], 64);
    if (nc == 2) _tile_stored(1, buf[1], 64);
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* o = O + (r0 + r) * D + x0;
    for (int c = 0; c < nc; ++c) {
      const __m512 acc = _mm512_load_ps(buf[c] + r * kTile);
      if (f != nullptr) {
        _mm512_storeu_ps(o + c * kTile, _mm512_mul_ps(acc, _mm512_set1_ps(f[r0 + r])));
      } else {
        _mm512_storeu_ps(o + c * kTile, _mm512_add_ps(_mm512_loadu_ps(o + c * kTile), acc));
      }
    }
  }
}

// O[r] = f[r] * sum_k2 A[r][k2] . BP[k2] (f != nullptr) or O[r] += the sum (f == nullptr) for r < nr (O [nr][D],
// D % 16 == 0): A row-major bf16 pairs of row stride lda (>= K2p, a multiple of 16; rows past nr up to the next
// multiple of 16 must be readable, their results are dropped), BP [K2p][D] pairs (K2p = pad(K2) rows, the rows
// and A's pairs past K2 zero).
inline void pair_tiles(const uint32_t* __restrict__ A, int64_t lda, int64_t nr, int64_t K2p,
                       const uint32_t* __restrict__ BP, int64_t D, const float* __restrict__ f, float* __restrict__ O) {
  const int64_t sa = lda * 4, sb = D * 4;
  for (int64_t r0 = 0; r0 < nr; r0 += 2 * kTile) {
    const bool two = nr - r0 > kTile;
    const uint32_t* a0 = A + r0 * lda;
    const uint32_t* a1 = a0 + kTile * lda;
    for (int64_t x0 = 0; x0 < D; x0 += 2 * kTile) {
      const int nc = D - x0 >= 2 * kTile ? 2 : 1;
      _tile_zero(0);
      _tile_zero(2);
      if (nc == 2) {
        _tile_zero(1);
        _tile_zero(3);
      }
      for (int64_t k = 0; k < K2p; k += kTile) {
        _tile_loadd(4, a0 + k, sa);
        _tile_loadd(6, BP + k * D + x0, sb);
        _tile_dpbf16ps(0, 4, 6);
        if (nc == 2) {
          _tile_loadd(7, BP + k * D + x0 + kTile, sb);
          _tile_dpbf16ps(1, 4, 7);
        }
        if (two) {
          _tile_loadd(5, a1 + k, sa);
          _tile_dpbf16ps(2, 5, 6);
          if (nc == 2) _tile_dpbf16ps(3, 5, 7);
        }
      }
      store_rows(false, nc, std::min(kTile, nr - r0), r0, x0, D, f, O);
      if (two) store_rows(true, nc, std::min(kTile, nr - r0 - kTile), r0 + kTile, x0, D, f, O);
    }
  }
}

// CT[x][j] += sum_k2 AT[x][k2] . B2[k2][j] for x < D (D % 16 == 0), j < Mp (Mp % 16 == 0): the transposed products
// dK^T += Q^T.dS, dV^T += dO^T.P of the backward with B2 = the rows of dS / P paired (pair_rows_bf16: B2[i2][j], the
// VNNI B layout) and AT = Q, dO with their rows paired and transposed (pair_cols_t). AT [D][lda] pairs, K2p = a
// multiple of 16 <= lda; B2 [K2p][ldb] pairs (the pairs past the true count zero in AT, finite in B2); CT [D][ldc].
inline void tn_tiles_t(const uint32_t* __restrict__ AT, int64_t lda, int64_t D, int64_t K2p,
                       const uint32_t* __restrict__ B2, int64_t ldb, int64_t Mp, float* __restrict__ CT, int64_t ldc) {
  const int64_t sa = lda * 4, sb = ldb * 4, sc = ldc * 4;
  for (int64_t x0 = 0; x0 < D; x0 += 2 * kTile) {
    const bool two = D - x0 > kTile;
    float* c0 = CT + x0 * ldc;
    float* c1 = c0 + kTile * ldc;
    int64_t j0 = 0;
    for (; j0 + 2 * kTile <= Mp; j0 += 2 * kTile) {
      _tile_loadd(0, c0 + j0, sc);
      _tile_loadd(1, c0 + j0 + kTile, sc);
      if (two) {
        _tile_loadd(2, c1 + j0, sc);
        _tile_loadd(3, c1 + j0 + kTile, sc);
      }
      for (int64_t k = 0; k < K2p; k += kTile) {
        _tile_loadd(4, AT + x0 * lda + k, sa);
        _tile_loadd(6, B2 + k * ldb + j0, sb);
        _tile_loadd(7, B2 + k * ldb + j0 + kTile, sb);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (two) {
          _tile_loadd(5, AT + (x0 + kTile) * lda + k, sa);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
      _tile_stored(0, c0 + j0, sc);
      _tile_stored(1, c0 + j0 + kTile, sc);
      if (two) {
        _tile_stored(2, c1 + j0, sc);
        _tile_stored(3, c1 + j0 + kTile, sc);
      }
    }
    if (j0 < Mp) {  // the last 16 columns
      _tile_loadd(0, c0 + j0, sc);
      if (two) _tile_loadd(2, c1 + j0, sc);
      for (int64_t k = 0; k < K2p; k += kTile) {
        _tile_loadd(4, AT + x0 * lda + k, sa);
        _tile_loadd(6, B2 + k * ldb + j0, sb);
        _tile_dpbf16ps(0, 4, 6);
        if (two) {
          _tile_loadd(5, AT + (x0 + kTile) * lda + k, sa);
          _tile_dpbf16ps(2, 5, 6);
        }
      }
      _tile_stored(0, c0 + j0, sc);
      if (two) _tile_stored(2, c1 + j0, sc);
    }
  }
}

#else
// A compiler without AMX (GCC < 11, Clang < 12) built this unit: its table says so (KernelTable::amx_bf16 false),
// so the op never sets Problem::amx and these are never called (they abort rather than compute anything).
class Scope {
 public:
  explicit Scope(bool on) {
    if (on) std::abort();
  }
};
inline void qk_tiles(const uint32_t*, int64_t, int64_t, int64_t, const uint32_t*, int64_t, float*, int64_t) {
  std::abort();
}
inline void pair_tiles(const uint32_t*, int64_t, int64_t, int64_t, const uint32_t*, int64_t, const float*, float*) {
  std::abort();
}
inline void tn_tiles_t(const uint32_t*, int64_t, int64_t, int64_t, const uint32_t*, int64_t, int64_t, float*, int64_t) {
  std::abort();
}
#endif  // VTRACK_ISA_AMX

// AT[x][i2] = X[2 i2][x] | X[2 i2 + 1][x] << 16 for x < D, i2 < ceil(nr/2) (the missing row of an odd nr is 0),
// 0 for ceil(nr/2) <= i2 < lda: the rows of a bf16 block paired and transposed (AT [D][lda], lda a multiple of 16).
inline void pair_cols_t(const uint16_t* __restrict__ X, int64_t nr, int64_t D, uint32_t* __restrict__ AT, int64_t lda) {
  const int64_t nr2 = (nr + 1) / 2;
  for (int64_t x = 0; x < D; ++x) std::memset(AT + x * lda + nr2, 0, static_cast<size_t>(lda - nr2) * sizeof(uint32_t));
  for (int64_t i2 = 0; i2 < nr2; ++i2) {
    const uint16_t* lo = X + 2 * i2 * D;
    const uint16_t* hi = 2 * i2 + 1 < nr ? lo + D : nullptr;
    for (int64_t x = 0; x < D; ++x) AT[x * lda + i2] = uint32_t(lo[x]) | (hi != nullptr ? uint32_t(hi[x]) << 16 : 0u);
  }
}

}  // namespace amx
