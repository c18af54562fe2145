// Compiled top-k step of the neighbour graph (mofsieve/graphs.py; built and loaded by
// mofsieve/graph_native.py).
//
// The pairs of the compiled pair search come in any order; each centre keeps its k first
// pairs in one total order: distance rounded to 1e-8 Å (as numpy.round(d, 8) rounds it:
// rint(d * 1e8) / 1e8, ties to even), then neighbour index, then image. graphs._nearest_k does
// the same with two numpy sorts over every pair; here the pairs are bucketed by centre (a
// counting sort) and each centre's few dozen pairs sorted alone. Same order, same pairs: the
// tests hold the two to identical graphs.
//
// Plain C ABI (ctypes): no Python, numpy or torch headers.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <new>
#include <vector>

// Indices of the kept pairs, centre by centre (ascending), each centre's in the order above,
// into ``kept`` (room for n_pairs); their number into ``n_kept``. centre, neigh: int64 per
// pair (centre in 0 .. n_atoms − 1); images: int64 n_pairs × 3; dist: float64 per pair.
// Returns 0; 1 when memory ran out; 2 for a centre outside 0 .. n_atoms − 1.
extern "C" int mofsieve_nearest_k(int64_t n_pairs, const int64_t* centre, const int64_t* neigh,
                                  const int64_t* images, const double* dist, int64_t n_atoms,
                                  int64_t k, int64_t* kept, int64_t* n_kept) {
  try {
    std::vector<int64_t> start(static_cast<size_t>(n_atoms) + 1, 0);
    for (int64_t p = 0; p < n_pairs; ++p) {
      if (centre[p] < 0 || centre[p] >= n_atoms) return 2;
      ++start[centre[p] + 1];
    }
    for (int64_t a = 0; a < n_atoms; ++a) start[a + 1] += start[a];
    std::vector<int64_t> order(static_cast<size_t>(n_pairs));
    {
      std::vector<int64_t> fill(start.begin(), start.end() - 1);
      for (int64_t p = 0; p < n_pairs; ++p) order[fill[centre[p]]++] = p;
    }
    std::vector<double> rounded(static_cast<size_t>(n_pairs));
    for (int64_t p = 0; p < n_pairs; ++p) rounded[p] = std::nearbyint(dist[p] * 1e8) / 1e8;
    auto before = [&](int64_t x, int64_t y) {
      if (rounded[x] != rounded[y]) return rounded[x] < rounded[y];
      if (neigh[x] != neigh[y]) return neigh[x] < neigh[y];
      for (int i = 0; i < 3; ++i)
        if (images[3 * x + i] != images[3 * y + i]) return images[3 * x + i] < images[3 * y + i];
      return false;
    };
    int64_t count = 0;
    for (int64_t a = 0; a < n_atoms; ++a) {
      int64_t* first = order.data() + start[a];
      int64_t* last = order.data() + start[a + 1];
      int64_t* middle = first + std::min<int64_t>(k, last - first);
      std::partial_sort(first, middle, last, before);
      for (int64_t* p = first; p != middle; ++p) kept[count++] = *p;
    }
    *n_kept = count;
    return 0;
  } catch (const std::bad_alloc&) {
    return 1;
  }
}
