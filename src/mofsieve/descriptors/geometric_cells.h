// Periodic neighbour structures for geometric_kernels.cpp: the lattice, a cell list of atoms
// queried by radius (CellList), and atom spheres registered in the bins they touch
// (SphereGrid). See geometric_kernels.cpp for the floating-point rules they follow there.
// energy_kernels.cpp includes it too, for the lattice only (compiled with its own flags).

#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Lattice {
  double row[3][3];  // cell vectors as rows (Å)
  double inv[3][3];  // fractional = cartesian @ inv
  double recip[3];   // |column i of inv|: moving 1 Å changes fraction i by at most this
};

Lattice make_lattice(const double* cell) {
  Lattice lat{};
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) lat.row[i][k] = cell[3 * i + k];
  const auto& m = lat.row;
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  lat.inv[0][0] = (m[1][1] * m[2][2] - m[1][2] * m[2][1]) / det;
  lat.inv[0][1] = (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det;
  lat.inv[0][2] = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det;
  lat.inv[1][0] = (m[1][2] * m[2][0] - m[1][0] * m[2][2]) / det;
  lat.inv[1][1] = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det;
  lat.inv[1][2] = (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det;
  lat.inv[2][0] = (m[1][0] * m[2][1] - m[1][1] * m[2][0]) / det;
  lat.inv[2][1] = (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det;
  lat.inv[2][2] = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det;
  for (int i = 0; i < 3; ++i)
    lat.recip[i] = std::sqrt(lat.inv[0][i] * lat.inv[0][i] + lat.inv[1][i] * lat.inv[1][i] +
                             lat.inv[2][i] * lat.inv[2][i]);
  return lat;
}

// Left to right, as numpy's reductions over 3 elements and pymatgen's distance2 sum.
inline double square3(const double* v) { return v[0] * v[0] + v[1] * v[1] + v[2] * v[2]; }

// s · a for an integer s: exact when s is 0 or ± a power of two.
inline bool exact_multiple(int s) { return (s == 0) || ((std::abs(s) & (std::abs(s) - 1)) == 0); }

// Atom images found by a query: image positions, squared distances from the query point,
// atom indices; ``size`` of them valid. Kept between queries to reuse the memory.
struct Hits {
  std::vector<double> x, y, z, d2;
  std::vector<int> atom;
  size_t size = 0;

  void clear() { size = 0; }
  void reserve_more(size_t more) {
    if (size + more <= x.size()) return;
    const size_t capacity = std::max(2 * x.size(), size + more);
    x.resize(capacity), y.resize(capacity), z.resize(capacity), d2.resize(capacity);
    atom.resize(capacity);
  }
};

// Atoms binned by fractional coordinate into n[0] × n[1] × n[2] bins of about ``width`` Å
// between planes. A query visits every (bin, periodic shift) whose slab can hold a point
// within the radius and reports each atom image there once: image s of an atom in bin w
// lies in slab k = w + s·n, one slab per image.
class CellList {
 public:
  CellList(const Lattice& lat, int n_atoms, const double* cart, double width) : lat_(lat) {
    int64_t total = 1;
    for (int i = 0; i < 3; ++i) {
      const double spacing = 1.0 / lat.recip[i];  // distance between lattice planes
      n_[i] = std::max(1, static_cast<int>(std::min(spacing / width, 256.0)));
      total *= n_[i];
    }
    while (total > 4 * static_cast<int64_t>(n_atoms) + 64) {  // mostly empty: coarser
      int widest = 0;
      for (int i = 1; i < 3; ++i)
        if (n_[i] > n_[widest]) widest = i;
      total /= n_[widest];
      n_[widest] = std::max(1, n_[widest] / 2);
      total *= n_[widest];
    }
    std::vector<int> bin(n_atoms);
    start_.assign(total + 1, 0);
    for (int a = 0; a < n_atoms; ++a) {
      const double* x = cart + 3 * a;
      int index = 0;
      for (int i = 0; i < 3; ++i) {
        const double f = x[0] * lat.inv[0][i] + x[1] * lat.inv[1][i] + x[2] * lat.inv[2][i];
        // Clamped, not wrapped: an atom a rounding error outside the cell keeps its own
        // image numbering (the query pads its range for it).
        const int b = std::min(n_[i] - 1, std::max(0, static_cast<int>(std::floor(f * n_[i]))));
        index = index * n_[i] + b;
      }
      bin[a] = index;
      ++start_[index + 1];
    }
    std::partial_sum(start_.begin(), start_.end(), start_.begin());
    atom_.resize(n_atoms);
    x_.resize(n_atoms), y_.resize(n_atoms), z_.resize(n_atoms);
    std::vector<int> fill(start_.begin(), start_.end() - 1);
    for (int a = 0; a < n_atoms; ++a) {
      const int slot = fill[bin[a]]++;
      atom_[slot] = a;
      x_[slot] = cart[3 * a], y_[slot] = cart[3 * a + 1], z_[slot] = cart[3 * a + 2];
    }
  }

  // Every atom image closer to p than ``radius``: appended to ``hits`` (atom, image position,
  // squared distance), in no particular order.
  void collect(const double* p, double radius, Hits& hits) const {
    Axis* axis = axis_;  // reused buffers: a CellList serves one thread
    for (int i = 0; i < 3; ++i) {
      const double f = p[0] * lat_.inv[0][i] + p[1] * lat_.inv[1][i] + p[2] * lat_.inv[2][i];
      const double reach = radius * lat_.recip[i];
      // Padded by 1e-6 of a bin against rounding in the fractions.
      const int lo = static_cast<int>(std::floor((f - reach) * n_[i] - 1e-6));
      const int hi = static_cast<int>(std::floor((f + reach) * n_[i] + 1e-6));
      axis[i].fill(lo, hi, n_[i], lat_.row[i]);
    }
    const double radius2 = radius * radius;
    for (int j0 = 0; j0 < axis[0].size; ++j0) {
      const int b0 = axis[0].bin[j0] * n_[1];
      const double* p0 = &axis[0].product[3 * j0];
      for (int j1 = 0; j1 < axis[1].size; ++j1) {
        const int b1 = (b0 + axis[1].bin[j1]) * n_[2];
        // images @ cell as BLAS accumulates it: fma(s2, a2, fma(s1, a1, s0 * a0)), which is
        // a plain sum wherever the later products are exact.
        double partial[3];
        for (int k = 0; k < 3; ++k)
          partial[k] = axis[1].exact[j1]
                           ? p0[k] + axis[1].product[3 * j1 + k]
                           : std::fma(axis[1].shift[j1], lat_.row[1][k], p0[k]);
        // Along the last axis, bins with the same shift are consecutive in memory: one run
        // of atoms per shift, not one per bin.
        for (int j2 = 0; j2 < axis[2].size; j2 = axis[2].run_end[j2]) {
          const int last = axis[2].run_end[j2] - 1;
          const int begin = start_[b1 + axis[2].bin[j2]], end = start_[b1 + axis[2].bin[last] + 1];
          if (begin == end) continue;
          double shift[3];
          for (int k = 0; k < 3; ++k)
            shift[k] = axis[2].exact[j2]
                           ? partial[k] + axis[2].product[3 * j2 + k]
                           : std::fma(axis[2].shift[j2], lat_.row[2][k], partial[k]);
          hits.reserve_more(end - begin);
          // Branch-free: every atom is written at the end, and kept when close enough.
          size_t n = hits.size;
          for (int j = begin; j < end; ++j) {
            const double image[3] = {x_[j] + shift[0], y_[j] + shift[1], z_[j] + shift[2]};
            const double delta[3] = {image[0] - p[0], image[1] - p[1], image[2] - p[2]};
            const double d2 = square3(delta);
            hits.x[n] = image[0], hits.y[n] = image[1], hits.z[n] = image[2];
            hits.d2[n] = d2;
            hits.atom[n] = atom_[j];
            n += d2 < radius2;
          }
          hits.size = n;
        }
      }
    }
  }

 private:
  // The slabs a query spans along one axis: wrapped bin, periodic shift s and s · a_i, and
  // where the run of slabs with the same shift ends.
  struct Axis {
    std::vector<int> bin, shift, run_end;
    std::vector<char> exact;
    std::vector<double> product;
    void fill(int lo, int hi, int n, const double* vector) {
      const int count = hi - lo + 1;
      if (static_cast<int>(bin.size()) < count) {
        bin.resize(count), shift.resize(count), run_end.resize(count), exact.resize(count);
        product.resize(3 * static_cast<size_t>(count));
      }
      size = count;
      int w = ((lo % n) + n) % n, s = (lo - w) / n;
      for (int j = 0; j < count; ++j, ++w) {
        if (w == n) w = 0, ++s;
        bin[j] = w, shift[j] = s, exact[j] = exact_multiple(s);
        for (int c = 0; c < 3; ++c) product[3 * j + c] = static_cast<double>(s) * vector[c];
      }
      for (int j = count; j-- > 0;)
        run_end[j] = (j + 1 < count && shift[j + 1] == shift[j]) ? run_end[j + 1] : j + 1;
    }
    int size = 0;
  };

  const Lattice& lat_;
  int n_[3];
  mutable Axis axis_[3];
  std::vector<int> start_;
  std::vector<int> atom_;
  std::vector<double> x_, y_, z_;
};

// Atom images registered in every bin their sphere of radius reach[i] can touch, each with
// its position: a query point then checks only its own bin's list, with no per-query set-up
// (the 4,096 void-fraction points per cell, the 1,024 seeds). Only bins that hold one of the
// ``points`` are filled, so a big cell costs no more than its points need. The image that
// reaches bin w from slab k = w + s·n is the atom shifted by −s cells.
class SphereGrid {
 public:
  // A bin's entries: image positions and the atoms' radii, entries [begin, end).
  struct Span {
    const double *x, *y, *z, *radius;
    int count;
  };

  SphereGrid(const Lattice& lat, int n_atoms, const double* cart, const double* radii,
             const double* reach, double width, size_t n_points, const double* points)
      : lat_(lat) {
    int64_t total = 1;
    for (int i = 0; i < 3; ++i) {
      n_[i] = std::max(1, static_cast<int>(std::min(1.0 / lat.recip[i] / width, 64.0)));
      total *= n_[i];
    }
    std::vector<char> used(total, 0);
    for (size_t q = 0; q < n_points; ++q) used[bin_of(points + 3 * q)] = 1;
    start_.assign(total + 1, 0);
    std::vector<int> range(6 * static_cast<size_t>(n_atoms));
    for (int a = 0; a < n_atoms; ++a) {
      const double* x = cart + 3 * a;
      for (int i = 0; i < 3; ++i) {
        const double f = x[0] * lat.inv[0][i] + x[1] * lat.inv[1][i] + x[2] * lat.inv[2][i];
        const double extent = reach[a] * lat.recip[i];
        range[6 * a + 2 * i] = static_cast<int>(std::floor((f - extent) * n_[i] - 1e-6));
        range[6 * a + 2 * i + 1] = static_cast<int>(std::floor((f + extent) * n_[i] + 1e-6));
      }
      each(&range[6 * a], [&](int bin, const int*) { start_[bin + 1] += used[bin]; });
    }
    std::partial_sum(start_.begin(), start_.end(), start_.begin());
    const size_t entries = start_.back();
    x_.resize(entries), y_.resize(entries), z_.resize(entries), radius_.resize(entries);
    std::vector<int> fill(start_.begin(), start_.end() - 1);
    for (int a = 0; a < n_atoms; ++a) {
      each(&range[6 * a], [&](int bin, const int* s) {
        if (!used[bin]) return;
        const int slot = fill[bin]++;
        double image[3];
        for (int k = 0; k < 3; ++k) {  // images @ cell for the shift −s, as BLAS sums it
          const double shift = std::fma(-s[2], lat.row[2][k],
                                        std::fma(-s[1], lat.row[1][k], -s[0] * lat.row[0][k]));
          image[k] = cart[3 * a + k] + shift;
        }
        x_[slot] = image[0], y_[slot] = image[1], z_[slot] = image[2];
        radius_[slot] = radii[a];
      });
    }
  }

  // The entries of the bin holding point p (one of the points given to the constructor).
  Span near(const double* p) const { return span(bin_of(p)); }

  Span span(int bin) const {
    const int begin = start_[bin];
    return {&x_[begin], &y_[begin], &z_[begin], &radius_[begin], start_[bin + 1] - begin};
  }

  // The points' indices ordered by bin (each bin's entries then stay in cache while its
  // points are tested), and each point's bin.
  void order_by_bin(size_t n_points, const double* points, std::vector<int>& order,
                    std::vector<int>& bins) const {
    bins.resize(n_points);
    std::vector<int> first(start_.size(), 0);
    for (size_t q = 0; q < n_points; ++q) ++first[(bins[q] = bin_of(points + 3 * q)) + 1];
    std::partial_sum(first.begin(), first.end(), first.begin());
    order.resize(n_points);
    for (size_t q = 0; q < n_points; ++q) order[first[bins[q]]++] = static_cast<int>(q);
  }

 private:
  int bin_of(const double* p) const {
    int index = 0;
    for (int i = 0; i < 3; ++i) {
      const double f = p[0] * lat_.inv[0][i] + p[1] * lat_.inv[1][i] + p[2] * lat_.inv[2][i];
      const int b = std::min(n_[i] - 1, std::max(0, static_cast<int>(std::floor(f * n_[i]))));
      index = index * n_[i] + b;
    }
    return index;
  }

  template <class Visit>
  void each(const int* range, Visit&& visit) const {
    int s[3];
    int w0 = ((range[0] % n_[0]) + n_[0]) % n_[0];
    s[0] = (range[0] - w0) / n_[0];
    for (int k0 = range[0]; k0 <= range[1]; ++k0, ++w0) {
      if (w0 == n_[0]) w0 = 0, ++s[0];
      int w1 = ((range[2] % n_[1]) + n_[1]) % n_[1];
      s[1] = (range[2] - w1) / n_[1];
      for (int k1 = range[2]; k1 <= range[3]; ++k1, ++w1) {
        if (w1 == n_[1]) w1 = 0, ++s[1];
        int w2 = ((range[4] % n_[2]) + n_[2]) % n_[2];
        s[2] = (range[4] - w2) / n_[2];
        const int base = (w0 * n_[1] + w1) * n_[2];
        for (int k2 = range[4]; k2 <= range[5]; ++k2, ++w2) {
          if (w2 == n_[2]) w2 = 0, ++s[2];
          visit(base + w2, s);
        }
      }
    }
  }

  const Lattice& lat_;
  int n_[3];
  std::vector<int> start_;
  std::vector<double> x_, y_, z_, radius_;
};

// Bin width for queries of radius r: about 3 bins across a query's span.
inline double width_for(double radius) { return std::max(1.0, radius / 1.5); }

}  // namespace
