// Compiled loops of the fast geometric pore descriptors (mofsieve/descriptors/geometric.py;
// built and loaded by mofsieve/descriptors/native.py).
//
// The same estimators as the numpy implementation (geometric_numpy.py), step for step: the
// same points, radii, orientations, stopping rules and floating-point operations, hence the
// same numbers (tests/test_descriptor_kernels.py holds them equal on real CoRE MOFs, and to
// values recorded before these loops existed). What changes is the cost, ~10x less:
// - periodic cell lists instead of a general pair search, and no pair arrays: atoms binned
//   by fractional coordinate, queried along runs of bins that are contiguous in memory;
// - the void-fraction points and the largest-sphere seeds test only the atom images
//   registered in their own bin (SphereGrid), in bin order;
// - a growing-shell round that is not the last only needs to know which points have an atom
//   surface within reach, so it stops at the first;
// - the pattern search evaluates only the atoms that can be the nearest surface;
// - surface caps are tested 8 at a time against the points still exposed (vectorised).
//
// Floating point: built with -ffp-contract=off, so that every a * b + c written here rounds
// twice, as numpy's element-wise operations do; min and comparisons are exact in any order.
// Where numpy reaches BLAS (images @ cell, the surface caps' product, the pattern search's
// product), OpenBLAS's kernels accumulate the inner dimension in order with fused
// multiply-adds, and the same chain is written out here with std::fma. Shortcuts that skip
// a sqrt or an atom keep a margin far above the rounding error, so they never change a
// result.
//
// Plain C ABI (ctypes): no Python, numpy or torch headers; a few seconds to build.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <numeric>
#include <vector>

#include "geometric_cells.h"

namespace {

// Capped clearance min(bound, min_i(|p − x_i| − r_i)) over the atoms within bound + largest
// of p: one growing-shells round of geometric_numpy._largest_sphere_radius.
double capped_clearance(const CellList& cells, const double* radii, double largest, double reach,
                        const double* p, Hits& hits) {
  const double search = reach + largest;
  double best = search - largest;
  hits.clear();
  cells.collect(p, search, hits);
  for (size_t h = 0; h < hits.size; ++h)
    best = std::min(best, std::sqrt(hits.d2[h]) - radii[hits.atom[h]]);
  return best;
}

struct Local {
  double offset[3], square, radius;  // offset from the start point, |offset|², atom radius
};

// Pattern search of one start point (geometric_numpy._largest_sphere_radius): the
// ``n_directions`` unit moves, the step halved when no move improves by 1e-9, each point
// within ``travel`` of its start, and the clearance of a trial the minimum over the atoms
// gathered once around the start.
//
// Only atoms that can hold that minimum are evaluated: with g_a = |o_a − position| − r_a, a
// trial within ``step`` of the position has clearance ≤ min g + step, and atom a's term is
// ≥ g_a − step; so atoms with g_a > min g + 2 step cannot be the minimum, while the step
// stays below the one they were chosen at. The list is remade after each move. The 1e-5 Å
// slack covers the rounding of the product formula (≤ ~1e-6 Å), so the minimum is the one
// over every atom, bit for bit.
double refine(const CellList& cells, const double* radii, double largest, const double* start,
              double value, double travel, double tolerance, int n_directions,
              const double* directions, std::vector<Local>& local, std::vector<double>& near,
              Hits& hits) {
  local.clear();
  const double margin = value + 2.0 * travel;
  hits.clear();
  cells.collect(start, margin + largest, hits);
  for (size_t h = 0; h < hits.size; ++h) {
    const int atom = hits.atom[h];
    if (std::sqrt(hits.d2[h]) - radii[atom] <= margin) {
      Local entry{{hits.x[h] - start[0], hits.y[h] - start[1], hits.z[h] - start[2]}, 0, 0};
      entry.square = square3(entry.offset);
      entry.radius = radii[atom];
      local.push_back(entry);
    }
  }
  const double travel2 = std::pow(travel, 2.0);
  double position[3] = {0.0, 0.0, 0.0};
  double step = 0.5 * travel;
  std::vector<double> gap(local.size()), soa;
  size_t n_near = 0;
  bool moved = true;
  for (int iteration = 0; iteration < 100 && step >= tolerance; ++iteration) {
    if (moved) {
      double nearest = kInf;
      for (size_t a = 0; a < local.size(); ++a) {
        const double delta[3] = {local[a].offset[0] - position[0], local[a].offset[1] - position[1],
                                 local[a].offset[2] - position[2]};
        gap[a] = std::sqrt(square3(delta)) - local[a].radius;
        nearest = std::min(nearest, gap[a]);
      }
      near.clear();  // their offsets, squared offsets and radii, one array each
      for (size_t a = 0; a < local.size(); ++a) {
        if (gap[a] <= nearest + 2.0 * step + 1e-5) {
          near.push_back(local[a].offset[0]), near.push_back(local[a].offset[1]);
          near.push_back(local[a].offset[2]), near.push_back(local[a].square);
          near.push_back(local[a].radius);
        }
      }
      n_near = near.size() / 5;
      soa.resize(near.size());
      for (size_t k = 0; k < 5; ++k)
        for (size_t a = 0; a < n_near; ++a) soa[k * n_near + a] = near[5 * a + k];
      moved = false;
    }
    double best_value = -kInf, best_trial[3] = {0.0, 0.0, 0.0};
    for (int d = 0; d < n_directions; ++d) {
      double trial[3];
      for (int k = 0; k < 3; ++k) trial[k] = position[k] + step * directions[3 * d + k];
      const double trial2 = square3(trial);
      double f = -kInf;
      if (!(trial2 > travel2)) {
        f = kInf;
        const double *ox = soa.data(), *oy = ox + n_near, *oz = oy + n_near,
                     *osquare = oz + n_near, *oradius = osquare + n_near;
        for (size_t a = 0; a < n_near; ++a) {
          // |t − o|² = |t|² + |o|² − 2 t·o, as numpy evaluates it (t·o by BLAS).
          const double dot = std::fma(trial[2], oz[a], std::fma(trial[1], oy[a], trial[0] * ox[a]));
          const double square = trial2 + osquare[a] - 2.0 * dot;
          f = std::min(f, std::sqrt(std::max(square, 0.0)) - oradius[a]);
        }
      }
      if (d == 0 || f > best_value) {  // numpy's argmax: the first of equal maxima
        best_value = f;
        for (int k = 0; k < 3; ++k) best_trial[k] = trial[k];
      }
    }
    if (best_value > value + 1e-9) {
      for (int k = 0; k < 3; ++k) position[k] = best_trial[k];
      value = best_value;
      moved = true;
    } else {
      step *= 0.5;
    }
  }
  return value;
}

// Void-fraction points and the largest-sphere search. ``inside_count``: how many points lie
// in an atom sphere (|p − x_i| < r_i). The first ``seed_points`` points outside every sphere
// seed the largest-sphere search (when ``want_lcd``), whose radius goes to ``lcd_radius``
// (0 without it).
void pores(const Lattice& lat, int n_atoms, const double* cart, const double* radii,
           int n_points, const double* points, bool want_lcd, int seed_points,
           int refined_points, double tolerance, double travel, int n_directions,
           const double* directions, double* inside_count, double* lcd_radius) {
  const double largest = *std::max_element(radii, radii + n_atoms);
  double reach = 1.5;  // of the first growing shell
  const SphereGrid spheres(lat, n_atoms, cart, radii, radii, 3.0, n_points, points);
  std::vector<double> candidates, clearance;
  Hits hits;
  const int seeds = want_lcd ? std::min(seed_points, n_points) : 0;
  int64_t count = 0;
  std::vector<int> by_bin, bins;
  spheres.order_by_bin(n_points, points, by_bin, bins);
  std::vector<char> inside_at(n_points);
  for (const int q : by_bin) {
    const double* p = points + 3 * q;
    const SphereGrid::Span near = spheres.span(bins[q]);
    // |p − x| < r, decided on d² wherever rounding cannot matter (a vectorised pass), and
    // with the distance itself in the rare case of a point within 1e-9 of a surface.
    int inside = 0, close = 0;
    for (int j = 0; j < near.count; ++j) {
      const double dx = near.x[j] - p[0], dy = near.y[j] - p[1], dz = near.z[j] - p[2];
      const double d2 = dx * dx + dy * dy + dz * dz, r2 = near.radius[j] * near.radius[j];
      inside |= d2 < r2 * (1.0 - 1e-9);
      close |= d2 < r2 * (1.0 + 1e-9);
    }
    if (!inside && close) {
      for (int j = 0; j < near.count; ++j) {
        const double delta[3] = {near.x[j] - p[0], near.y[j] - p[1], near.z[j] - p[2]};
        inside |= std::sqrt(square3(delta)) < near.radius[j];
      }
    }
    inside_at[q] = static_cast<char>(inside);
  }
  for (int q = 0; q < n_points; ++q) {
    count += inside_at[q];
    if (q < seeds && !inside_at[q])
      candidates.insert(candidates.end(), points + 3 * q, points + 3 * q + 3);
  }
  *inside_count = static_cast<double>(count);
  *lcd_radius = 0.0;
  if (!want_lcd || candidates.empty()) return;

  // Growing shells. A round with reach ρ finds each candidate's clearance capped at ρ,
  // exact where below it. While some are not exact (deeper than every exact one), an
  // evenly spread subset of at most ~256 of those is searched again with twice the
  // reach; the round where all are exact gives the values. So a round that is not the
  // last only needs to know which are exact: a candidate is as soon as one atom surface
  // lies within ρ, and the search stops there (the first round, over all seed points).
  const double bound = (reach + largest) - largest;
  std::vector<double> within(radii, radii + n_atoms);
  for (double& r : within) r += bound;  // only these atoms can lower a capped clearance
  const SphereGrid shell(lat, n_atoms, cart, radii, within.data(), 3.0,
                         candidates.size() / 3, candidates.data());
  std::vector<char> exact(candidates.size() / 3);
  bool all_exact = true;
  for (size_t q = 0; q < exact.size(); ++q) {
    const double* p = &candidates[3 * q];
    const SphereGrid::Span near = shell.near(p);
    bool found = false;
    for (int first = 0; first < near.count && !found; first += 8) {
      double best = bound;
      for (int j = first; j < std::min(near.count, first + 8); ++j) {
        const double delta[3] = {near.x[j] - p[0], near.y[j] - p[1], near.z[j] - p[2]};
        best = std::min(best, std::sqrt(square3(delta)) - near.radius[j]);
      }
      found = best < bound;
    }
    exact[q] = found;
    all_exact &= found;
  }
  if (all_exact) {
    clearance.resize(exact.size());
    for (size_t q = 0; q < exact.size(); ++q) {
      const double* p = &candidates[3 * q];
      const SphereGrid::Span near = shell.near(p);
      double best = bound;
      for (int j = 0; j < near.count; ++j) {
        const double delta[3] = {near.x[j] - p[0], near.y[j] - p[1], near.z[j] - p[2]};
        best = std::min(best, std::sqrt(square3(delta)) - near.radius[j]);
      }
      clearance[q] = best;
    }
  }
  while (!all_exact) {
    std::vector<double> deeper;
    for (size_t q = 0; q < exact.size(); ++q)
      if (!exact[q]) deeper.insert(deeper.end(), &candidates[3 * q], &candidates[3 * q + 3]);
    const size_t n_deeper = deeper.size() / 3, stride = std::max<size_t>(1, n_deeper / 256);
    candidates.clear();
    for (size_t q = 0; q < n_deeper; q += stride)
      candidates.insert(candidates.end(), &deeper[3 * q], &deeper[3 * q + 3]);
    reach *= 2.0;
    const double round_bound = (reach + largest) - largest;
    const CellList wide(lat, n_atoms, cart, width_for(reach + largest));
    clearance.resize(candidates.size() / 3);
    exact.resize(clearance.size());
    all_exact = true;
    for (size_t q = 0; q < clearance.size(); ++q) {
      clearance[q] = capped_clearance(wide, radii, largest, reach, &candidates[3 * q], hits);
      exact[q] = clearance[q] < round_bound;
      all_exact &= static_cast<bool>(exact[q]);
    }
  }
  std::vector<int> order(clearance.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int x, int y) { return clearance[x] > clearance[y]; });
  order.resize(std::min<size_t>(order.size(), std::max(0, refined_points)));
  double top = -kInf;
  for (const int q : order) top = std::max(top, clearance[q]);
  const CellList near(lat, n_atoms, cart, width_for(top + 2.0 * travel + largest));
  std::vector<Local> local;
  std::vector<double> near_atoms;
  double result = -kInf;
  for (const int q : order)
    result = std::max(result, refine(near, radii, largest, &candidates[3 * q], clearance[q],
                                     travel, tolerance, n_directions, directions, local,
                                     near_atoms, hits));
  *lcd_radius = std::max(0.0, result);
}

// Surface points. ``exposed[i]``: how many of atom i's ``per_atom`` points (the unit
// ``directions``, turned by the atom's rotation) lie inside no other atom's expanded sphere
// (radius + ``probe``). ``normals`` holds the 4 × n_atoms Gaussian draws that make the
// rotations (Shoemake's quaternions, as geometric_numpy._random_rotations).
void surface(const Lattice& lat, int n_atoms, const double* cart, const double* radii,
             double probe, const double* normals, int per_atom, const float* directions,
             int32_t* exposed) {
  std::vector<double> expanded_radii(n_atoms);
  for (int i = 0; i < n_atoms; ++i) expanded_radii[i] = radii[i] + probe;
  const double* expanded = expanded_radii.data();
  const double largest = *std::max_element(expanded, expanded + n_atoms);
  const CellList cells(lat, n_atoms, cart, largest);  // bins as wide as the largest sphere
  std::vector<float> u0(per_atom), u1(per_atom), u2(per_atom);
  for (int p = 0; p < per_atom; ++p) {
    u0[p] = directions[3 * p];
    u1[p] = directions[3 * p + 1];
    u2[p] = directions[3 * p + 2];
  }
  std::vector<int32_t> buried(per_atom);
  std::vector<float> w0(per_atom), w1(per_atom), w2(per_atom);  // the points still exposed

  // Per overlapping neighbour: the pair vector and the neighbour's expanded radius
  // (doubles), then its cap: the unit normal turned by the rotation and −threshold (floats).
  std::vector<double> vx, vy, vz, others;
  Hits hits;
  std::vector<float> c0, c1, c2, c3;
  std::vector<int64_t> far;
  for (int i = 0; i < n_atoms; ++i) {
    const double* centre = cart + 3 * i;
    const double own = expanded[i];
    double w = normals[i], x = normals[n_atoms + i], y = normals[2 * n_atoms + i],
           z = normals[3 * n_atoms + i];
    const double norm = std::sqrt(w * w + x * x + y * y + z * z);
    w = w / norm, x = x / norm, y = y / norm, z = z / norm;
    const double r00 = 1 - 2 * (y * y + z * z), r01 = 2 * (x * y - z * w),
                 r02 = 2 * (x * z + y * w), r10 = 2 * (x * y + z * w),
                 r11 = 1 - 2 * (x * x + z * z), r12 = 2 * (y * z - x * w),
                 r20 = 2 * (x * z - y * w), r21 = 2 * (y * z + x * w),
                 r22 = 1 - 2 * (x * x + y * y);
    hits.clear();
    cells.collect(centre, own + largest, hits);
    // Neighbours whose expanded sphere may overlap this one (the exact test, with the
    // distance, follows with the caps): their pair vectors and radii.
    vx.resize(hits.size), vy.resize(hits.size), vz.resize(hits.size), others.resize(hits.size);
    size_t n_caps = 0;
    for (size_t h = 0; h < hits.size; ++h) {
      const double other = expanded[hits.atom[h]], reach = own + other;
      vx[n_caps] = hits.x[h] - centre[0];
      vy[n_caps] = hits.y[h] - centre[1];
      vz[n_caps] = hits.z[h] - centre[2];
      others[n_caps] = other;
      n_caps += hits.d2[h] < reach * reach * (1.0 + 1e-9);
    }
    c0.resize(n_caps), c1.resize(n_caps), c2.resize(n_caps), c3.resize(n_caps);
    far.resize(n_caps);
    const double *px = vx.data(), *py = vy.data(), *pz = vz.data(), *po = others.data();
    float *q0 = c0.data(), *q1 = c1.data(), *q2 = c2.data(), *q3 = c3.data();
    int64_t* far_ = far.data();
    for (size_t c = 0; c < n_caps; ++c) {  // branch-free: vectorised
      const double distance = std::sqrt(px[c] * px[c] + py[c] * py[c] + pz[c] * pz[c]);
      const double other = po[c];
      const bool overlapping = (distance < own + other) & (distance > 1e-8);
      // A point u of this sphere lies in the other when u·n > t (law of cosines).
      const double threshold =
          (distance * distance + own * own - other * other) / (2.0 * distance * own);
      const double ux = px[c] / distance, uy = py[c] / distance, uz = pz[c] / distance;
      q0[c] = static_cast<float>(ux * r00 + uy * r10 + uz * r20);
      q1[c] = static_cast<float>(ux * r01 + uy * r11 + uz * r21);
      q2[c] = static_cast<float>(ux * r02 + uy * r12 + uz * r22);
      q3[c] = static_cast<float>(-threshold);
      far_[c] = !overlapping;
    }
    for (size_t c = 0; c < n_caps; ++c)  // not overlapping after all: a cap burying nothing
      if (far[c]) q3[c] = -std::numeric_limits<float>::infinity();
    // The points still exposed, tested against 8 caps at a time and then compacted: most
    // are buried by the first caps, so later caps test few points. Which points end up
    // buried does not depend on the order.
    float *a0 = w0.data(), *a1 = w1.data(), *a2 = w2.data();
    std::copy(u0.begin(), u0.end(), a0);
    std::copy(u1.begin(), u1.end(), a1);
    std::copy(u2.begin(), u2.end(), a2);
    int alive = per_atom;
    for (size_t block = 0; block < n_caps && alive > 0; block += 8) {
      const size_t last = std::min(n_caps, block + 8);
      int32_t* hit = buried.data();
      for (int p = 0; p < alive; ++p) hit[p] = 0;
      for (size_t c = block; c < last; ++c) {
        const float k0 = q0[c], k1 = q1[c], k2 = q2[c], k3 = q3[c];
        // [n, −t] · [u, 1] > 0 as BLAS's sgemm accumulates it; the last step adds −t.
        for (int p = 0; p < alive; ++p)
          hit[p] |= std::fma(k2, a2[p], std::fma(k1, a1[p], k0 * a0[p])) + k3 > 0.0f;
      }
      int kept = 0;
      for (int p = 0; p < alive; ++p) {
        a0[kept] = a0[p], a1[kept] = a1[p], a2[kept] = a2[p];
        kept += !hit[p];
      }
      alive = kept;
    }
    const int count = alive;
    exposed[i] = count;
  }
}

}  // namespace

extern "C" {

// The geometric pore descriptors' loops for one structure (atoms at ``cart``, wrapped into
// the cell whose rows are ``cell``, with Zeo++ ``radii``): the void-fraction points and,
// with ``want_lcd``, the largest-sphere search (``pores``), into out[0] (points inside an
// atom) and out[1] (largest-sphere radius); with ``want_surface``, the exposed surface
// points per atom (``surface``). Returns 0, or 1 when memory ran out.
int mofsieve_geometric(int n_atoms, const double* cart, const double* radii, const double* cell,
                       int want_pores, int want_lcd, int n_points, const double* points,
                       int seed_points, int refined_points, double tolerance, double travel,
                       int n_directions, const double* directions, int want_surface,
                       double probe, const double* normals, int per_atom,
                       const float* surface_directions, int32_t* exposed, double* out) {
  try {
    const Lattice lat = make_lattice(cell);
    if (want_pores)
      pores(lat, n_atoms, cart, radii, n_points, points, want_lcd != 0, seed_points,
            refined_points, tolerance, travel, n_directions, directions, &out[0], &out[1]);
    if (want_surface)
      surface(lat, n_atoms, cart, radii, probe, normals, per_atom, surface_directions, exposed);
    return 0;
  } catch (const std::bad_alloc&) {
    return 1;
  }
}

}  // extern "C"
