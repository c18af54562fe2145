// Fused CPU inference kernels for mofsieve.layers (loaded by mofsieve/fused.py).
//
// Every layer's per-edge work is a short chain of element-wise steps over E×C tensors
// (gather, add, activation, weighted sum). Run as separate PyTorch operators each step reads
// and writes the whole tensor, and softplus alone (exp, then a general log1p) costs a quarter
// of inference. Here each edge's C values are computed once, in
// registers, and the tensors in between never exist. The matrix products stay in PyTorch.
//
// Notation as in layers.py: the projection of edge (n, k) (centre n, its k-th of K
// neighbours, src[n*K + k]) is u = A[src] + B[n] + P[n*K + k], with A = W_j v, B = W_i v + b
// per atom and P = W_e e per edge.

#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

using Vec = at::vec::Vectorized<float>;
constexpr int64_t kLanes = Vec::size();
constexpr int64_t kMaxHeads = 16;
constexpr int64_t kAtomsPerTask = 64;

// softplus(u) = max(u, 0) + log1p(y), y = exp(-|u|) in (0, 1], with log1p(y) = 2 atanh(s),
// s = y / (2 + y) in (0, 1/3], summed as its odd series up to s^15 (the next term is below
// 1e-9 of the sum): a division and eight multiply-adds instead of a call to a general log,
// accurate to float32 rounding and, like log1p, relatively accurate where y is tiny. |u| is
// capped at 40 so that s² stays a normal float (denormals are many times slower); the term
// left out there is below e^-40 = 4e-18.
inline Vec softplus(Vec u) {
  const Vec y = (Vec(0.f) - at::vec::minimum(u.abs(), Vec(40.f))).exp_u20();
  const Vec s = y / (Vec(2.f) + y);
  const Vec s2 = s * s;
  Vec series(2.f / 15.f);
  for (const float c : {2.f / 13.f, 2.f / 11.f, 2.f / 9.f, 2.f / 7.f, 2.f / 5.f, 2.f / 3.f, 2.f}) {
    series = at::vec::fmadd(series, s2, Vec(c));
  }
  return at::vec::fmadd(series, s, at::vec::maximum(u, Vec(0.f)));
}

// sigmoid(g) = 1 / (1 + exp(-g)), with -g held within ±80 so that exp(-g) and its reciprocal
// stay normal floats (e^80 = 5.5e34; denormals are many times slower): beyond, the result
// differs from 0 or 1 by less than e^-80. exp_u20 turns NaN into a number; NaN is put back.
inline Vec sigmoid(Vec g) {
  const Vec e = at::vec::clamp(Vec(0.f) - g, Vec(-80.f), Vec(80.f)).exp_u20();
  return Vec::blendv(Vec(1.f) / (Vec(1.f) + e), g, g.isnan());
}

inline Vec load(const float* p, int64_t count) {
  return count == kLanes ? Vec::loadu(p) : Vec::loadu(p, count);
}

inline void store(Vec v, float* p, int64_t count) {
  if (count == kLanes) {
    v.store(p);
  } else {
    v.store(p, count);
  }
}

inline float sum_lanes(Vec v) {
  float lanes[kLanes];
  v.store(lanes);
  float total = 0.f;
  for (int64_t l = 0; l < kLanes; ++l) total += lanes[l];
  return total;
}

void check_inputs(const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& P,
                  const torch::Tensor& src, int64_t K) {
  for (const torch::Tensor* t : {&A, &B, &P}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat && t->dim() == 2 &&
                    t->is_contiguous(),
                "fused kernels take contiguous 2-D float32 CPU tensors");
  }
  TORCH_CHECK(src.device().is_cpu() && src.scalar_type() == at::kLong && src.dim() == 1 &&
                  src.is_contiguous(),
              "fused kernels take a contiguous int64 CPU index");
  const int64_t N = B.size(0), C = B.size(1);
  TORCH_CHECK(K > 0 && A.size(0) == N && A.size(1) == C && P.size(0) == N * K && P.size(1) == C &&
                  src.size(0) == N * K,
              "fused kernels: shapes do not fit N atoms with K edges each");
  const int64_t* s = src.data_ptr<int64_t>();
  const bool in_range = std::all_of(s, s + src.size(0), [N](int64_t j) { return j >= 0 && j < N; });
  TORCH_CHECK(in_range, "fused kernels: a neighbour index lies outside the batch's atoms");
}

}  // namespace

// EdgeConv: e' = e + softplus(u) for every edge; written over P (its own scratch) and returned.
torch::Tensor edge_update(torch::Tensor A, torch::Tensor B, torch::Tensor P, torch::Tensor e,
                          torch::Tensor src, int64_t K) {
  check_inputs(A, B, P, src, K);
  TORCH_CHECK(e.sizes() == P.sizes() && e.is_contiguous() && e.scalar_type() == at::kFloat,
              "fused edge_update: edge features must match P");
  const int64_t N = B.size(0), D = B.size(1);
  const float* a = A.data_ptr<float>();
  const float* b = B.data_ptr<float>();
  const float* edge_in = e.data_ptr<float>();
  const int64_t* s = src.data_ptr<int64_t>();
  float* p = P.data_ptr<float>();
  at::parallel_for(0, N, kAtomsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const float* b_row = b + n * D;
      for (int64_t edge = n * K; edge < (n + 1) * K; ++edge) {
        const float* a_row = a + s[edge] * D;
        const float* e_row = edge_in + edge * D;
        float* p_row = p + edge * D;
        for (int64_t c = 0; c < D; c += kLanes) {
          const int64_t count = std::min(kLanes, D - c);
          Vec u = load(a_row + c, count) + load(b_row + c, count) + load(p_row + c, count);
          store(load(e_row + c, count) + softplus(u), p_row + c, count);
        }
      }
    }
  });
  return P;
}

// Neighbour attention with H heads, aggregated:
//   out[n] = Σ_k w_nk softplus(u_nk),  w_nk = Σ_h beta[n, h] softmax_k(att_h · leaky(u_nk))
// (att: H×C score vectors, beta: N×H head weights, each row summing to 1).
torch::Tensor attention(torch::Tensor A, torch::Tensor B, torch::Tensor P, torch::Tensor src,
                        torch::Tensor att, torch::Tensor beta, int64_t K, double negative_slope) {
  check_inputs(A, B, P, src, K);
  const int64_t N = B.size(0), C = B.size(1), H = att.size(0);
  TORCH_CHECK(H >= 1 && H <= kMaxHeads && att.size(1) == C && att.is_contiguous() &&
                  att.scalar_type() == at::kFloat,
              "fused attention: att must be H×C float32 with 1 <= H <= 16");
  TORCH_CHECK(beta.size(0) == N && beta.size(1) == H && beta.is_contiguous() &&
                  beta.scalar_type() == at::kFloat,
              "fused attention: beta must be N×H float32");
  torch::Tensor out = torch::empty({N, C}, B.options());
  const float* a = A.data_ptr<float>();
  const float* b = B.data_ptr<float>();
  const float* p = P.data_ptr<float>();
  const int64_t* s = src.data_ptr<int64_t>();
  const float* score_vectors = att.data_ptr<float>();
  const float* head_weight = beta.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const Vec slope(static_cast<float>(negative_slope));
  at::parallel_for(0, N, kAtomsPerTask, [&](int64_t begin, int64_t end) {
    std::vector<float> values(K * C);  // softplus(u) of one atom's K edges
    std::vector<float> score(K * H);
    std::vector<float> edge_weight(K);
    for (int64_t n = begin; n < end; ++n) {
      const float* b_row = b + n * C;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t edge = n * K + k;
        const float* a_row = a + s[edge] * C;
        const float* p_row = p + edge * C;
        Vec partial[kMaxHeads];
        for (int64_t h = 0; h < H; ++h) partial[h] = Vec(0.f);
        for (int64_t c = 0; c < C; c += kLanes) {
          const int64_t count = std::min(kLanes, C - c);
          Vec u = load(a_row + c, count) + load(b_row + c, count) + load(p_row + c, count);
          Vec leaky = at::vec::maximum(u, u * slope);  // slope < 1
          for (int64_t h = 0; h < H; ++h) {
            partial[h] = at::vec::fmadd(leaky, load(score_vectors + h * C + c, count), partial[h]);
          }
          store(softplus(u), values.data() + k * C + c, count);
        }
        for (int64_t h = 0; h < H; ++h) score[k * H + h] = sum_lanes(partial[h]);
      }
      std::fill(edge_weight.begin(), edge_weight.end(), 0.f);
      for (int64_t h = 0; h < H; ++h) {
        float top = -INFINITY;
        for (int64_t k = 0; k < K; ++k) top = std::max(top, score[k * H + h]);
        float total = 0.f;
        for (int64_t k = 0; k < K; ++k) {
          score[k * H + h] = std::exp(score[k * H + h] - top);
          total += score[k * H + h];
        }
        const float factor = head_weight[n * H + h] / total;
        for (int64_t k = 0; k < K; ++k) edge_weight[k] += factor * score[k * H + h];
      }
      for (int64_t c = 0; c < C; c += kLanes) {
        const int64_t count = std::min(kLanes, C - c);
        Vec sum(0.f);
        for (int64_t k = 0; k < K; ++k) {
          sum = at::vec::fmadd(Vec(edge_weight[k]), load(values.data() + k * C + c, count), sum);
        }
        store(sum, o + n * C + c, count);
      }
    }
  });
  return out;
}

// CGConv, aggregated, with its evaluation-mode BatchNorm and residual: A, B, P are 2C wide
// (gate channels, then core channels) and
//   out[n] = x[n] + scale ⊙ Σ_k sigmoid(u_nk[:C]) ⊙ softplus(u_nk[C:]) + shift.
// Each chunk of C sums its K edges in one register; no E×C message exists.
torch::Tensor cgconv(torch::Tensor A, torch::Tensor B, torch::Tensor P, torch::Tensor src,
                     int64_t K, torch::Tensor x, torch::Tensor scale, torch::Tensor shift) {
  check_inputs(A, B, P, src, K);
  const int64_t N = B.size(0), C2 = B.size(1), C = C2 / 2;
  TORCH_CHECK(C2 % 2 == 0 && x.dim() == 2 && x.size(0) == N && x.size(1) == C &&
                  x.is_contiguous() && x.scalar_type() == at::kFloat,
              "fused cgconv: x must be N×C float32 with A, B, P N×2C");
  for (const torch::Tensor* t : {&scale, &shift}) {
    TORCH_CHECK(t->dim() == 1 && t->size(0) == C && t->is_contiguous() &&
                    t->scalar_type() == at::kFloat,
                "fused cgconv: scale and shift must be C float32");
  }
  torch::Tensor out = torch::empty({N, C}, x.options());
  const float* a = A.data_ptr<float>();
  const float* b = B.data_ptr<float>();
  const float* p = P.data_ptr<float>();
  const int64_t* s = src.data_ptr<int64_t>();
  const float* x_in = x.data_ptr<float>();
  const float* norm_scale = scale.data_ptr<float>();
  const float* norm_shift = shift.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, N, kAtomsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const float* b_row = b + n * C2;
      for (int64_t c = 0; c < C; c += kLanes) {
        const int64_t count = std::min(kLanes, C - c);
        const Vec b_gate = load(b_row + c, count);
        const Vec b_core = load(b_row + C + c, count);
        Vec sum(0.f);
        for (int64_t edge = n * K; edge < (n + 1) * K; ++edge) {
          const float* a_row = a + s[edge] * C2;
          const float* p_row = p + edge * C2;
          const Vec gate = load(a_row + c, count) + b_gate + load(p_row + c, count);
          const Vec core = load(a_row + C + c, count) + b_core + load(p_row + C + c, count);
          sum = at::vec::fmadd(sigmoid(gate), softplus(core), sum);
        }
        const Vec normed =
            at::vec::fmadd(sum, load(norm_scale + c, count), load(norm_shift + c, count));
        store(load(x_in + n * C + c, count) + normed, o + n * C + c, count);
      }
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("edge_update", &edge_update, "EdgeConv per-edge update, fused (inference)");
  m.def("attention", &attention, "neighbour attention, fused (inference)");
  m.def("cgconv", &cgconv, "CGConv with its BatchNorm and residual, fused (inference)");
}
