// Compiled loop of the CO2 Lennard-Jones insertion energies (mofsieve/descriptors/
// energy_grid.py; built and loaded by mofsieve/descriptors/energy_native.py).
//
// The same energies as energy_grid.insertion_energies_numpy, which tests hold it to: for each
// sample point, a rigid linear molecule (sites at offsets along a unit axis) and every
// framework atom image within the cutoff of each site, Lennard-Jones cut and shifted per pair,
// the total capped at ``cap`` (and the Coulomb sums, below). What changes is the cost, over
// 1000x less:
// - the points are grouped by the bin of the cell they fall in, and each bin gathers once the
//   atom images any of its points can reach (atoms pre-binned, so a big cell's bin visits only
//   the slabs around it), relative to the bin centre, in float;
// - each point first sums the images near its bin; when that sum, less the most the far
//   images could pull down, is already above ``cap`` (a site inside an atom), the point is at
//   ``cap`` and the far images are skipped: the number it gets is the one the full sum and
//   the cap would give, only sooner;
// - with charges, the Coulomb energy of the molecule's sites (plain 1/r sums over the same
//   images, cut where the molecule's centre is 12 Å from an image) is added to each point
//   whose Lennard-Jones energy is below the cap;
// - the pair loops are single-precision SIMD (``#pragma omp simd``, -fopenmp-simd), each site
//   summed in float lanes and then in double. Hence agreement with numpy to ~1e-5 relative,
//   not bit for bit.
//
// Plain C ABI (ctypes): no Python, numpy or torch headers; a second or two to build.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <new>
#include <numeric>
#include <vector>

#include "geometric_cells.h"  // Lattice, make_lattice

namespace {

constexpr int kMaxSites = 8;  // sites of the molecule (energy_native.MAX_SITES)
// e²/(4πε₀ k_B · 1 Å) in K: 1 e² / (4πε₀ · 1 Å) = 1389.3546 kJ/mol = 167101.0 K · k_B
constexpr double kCoulombK = 167101.0;

inline void to_fractional(const Lattice& lat, const double* x, double* f) {
  for (int i = 0; i < 3; ++i)
    f[i] = x[0] * lat.inv[0][i] + x[1] * lat.inv[1][i] + x[2] * lat.inv[2][i];
}

// Into [0, 1): f − ⌊f⌋ of a fraction a rounding error below 0 (an atom on a cell face) is
// 1 − 1e-17, which rounds to 1.0; bin_of would put it in bin 0 while its position is a whole
// cell away, and the gather would miss its images.
inline void wrap_fraction(double* f) {
  for (int i = 0; i < 3; ++i) {
    f[i] -= std::floor(f[i]);
    if (f[i] >= 1.0) f[i] = 0.0;
  }
}

inline int floor_div(int k, int n) { return (k >= 0) ? k / n : -((-k + n - 1) / n); }

// Atom images of one element type gathered for one bin: positions relative to the bin
// centre and partial charges (0 without charges). Kept between bins to reuse the memory.
struct Images {
  std::vector<float> x, y, z, q;
  size_t size = 0;

  void clear() { size = 0; }
  void push(const double* d, double charge) {
    if (size == x.size()) {
      const size_t more = std::max<size_t>(64, 2 * x.size());
      x.resize(more), y.resize(more), z.resize(more), q.resize(more);
    }
    x[size] = static_cast<float>(d[0]), y[size] = static_cast<float>(d[1]);
    z[size] = static_cast<float>(d[2]), q[size] = static_cast<float>(charge);
    ++size;
  }
};

// Coulomb energy (K) of the molecule's charged sites with the images whose distance from the
// molecule's centre is below the cutoff: the whole molecule sees the same images, so a
// neutral molecule meets each one as a multipole and the truncation adds no net charge.
// ``site_q``: site charge × e²/(4πε₀ k_B) (K Å per e). The site count is a template
// argument: with a loop of run-time length inside, the image loop was not vectorized and
// cost more than all the Lennard-Jones sums.
template <int kSites>
double coulomb_sum(const Images& images, const float* centre, const float (*sites)[3],
                   const float* site_q, float cutoff2) {
  const size_t n = images.size;
  const float* x = images.x.data();
  const float* y = images.y.data();
  const float* z = images.z.data();
  const float* q = images.q.data();
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (size_t j = 0; j < n; ++j) {
    const float cx = x[j] - centre[0], cy = y[j] - centre[1], cz = z[j] - centre[2];
    const float centre2 = cx * cx + cy * cy + cz * cz;
    float potential = 0.0f;
    for (int s = 0; s < kSites; ++s) {
      const float dx = x[j] - sites[s][0], dy = y[j] - sites[s][1], dz = z[j] - sites[s][2];
      potential += site_q[s] / std::sqrt(dx * dx + dy * dy + dz * dz);
    }
    sum += (centre2 < cutoff2) ? q[j] * potential : 0.0f;
  }
  return static_cast<double>(sum);
}

double coulomb_energy(const Images& images, const float* centre, const float (*sites)[3],
                      const float* site_q, int n_sites, float cutoff2) {
  switch (n_sites) {  // 1 .. kMaxSites, checked by the caller
    case 1: return coulomb_sum<1>(images, centre, sites, site_q, cutoff2);
    case 2: return coulomb_sum<2>(images, centre, sites, site_q, cutoff2);
    case 3: return coulomb_sum<3>(images, centre, sites, site_q, cutoff2);
    case 4: return coulomb_sum<4>(images, centre, sites, site_q, cutoff2);
    case 5: return coulomb_sum<5>(images, centre, sites, site_q, cutoff2);
    case 6: return coulomb_sum<6>(images, centre, sites, site_q, cutoff2);
    case 7: return coulomb_sum<7>(images, centre, sites, site_q, cutoff2);
    default: return coulomb_sum<kMaxSites>(images, centre, sites, site_q, cutoff2);
  }
}

// Lennard-Jones energy (K) of one site at q (relative to the bin centre) with images of one
// type, pair parameters A = 4εσ¹², B = 4εσ⁶ and the shift (the pair energy at the cutoff);
// pairs beyond the cutoff left out.
double site_energy(const Images& images, const double* pair, const float* q, float cutoff2) {
  const size_t n = images.size;
  const float* x = images.x.data();
  const float* y = images.y.data();
  const float* z = images.z.data();
  const float a = static_cast<float>(pair[0]), b = static_cast<float>(pair[1]);
  const float shift = static_cast<float>(pair[2]);
  const float qx = q[0], qy = q[1], qz = q[2];
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (size_t j = 0; j < n; ++j) {
    const float dx = x[j] - qx, dy = y[j] - qy, dz = z[j] - qz;
    const float r2 = dx * dx + dy * dy + dz * dz;
    const float inv2 = 1.0f / r2;
    const float inv6 = inv2 * inv2 * inv2;
    const float pair_energy = (a * inv6 - b) * inv6 - shift;
    sum += (r2 < cutoff2) ? pair_energy : 0.0f;
  }
  return static_cast<double>(sum);
}

// Σ 1 / (|r| − margin)⁶ over the images: a site within ``margin`` of the bin centre is at
// least |r| − margin from each, so its attraction to it is at most B times this term
// (shifted pairs only lose attraction; pairs past the cutoff give none). Every image here is
// farther than ``margin`` (the far images).
double inverse_sixth_beyond(const Images& images, double margin) {
  const size_t n = images.size;
  const float* x = images.x.data();
  const float* y = images.y.data();
  const float* z = images.z.data();
  const float m = static_cast<float>(margin);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (size_t j = 0; j < n; ++j) {
    const float closest = std::sqrt(x[j] * x[j] + y[j] * y[j] + z[j] * z[j]) - m;
    const float inv2 = 1.0f / (closest * closest);
    sum += inv2 * inv2 * inv2;
  }
  return static_cast<double>(sum);
}

// The atoms wrapped into the cell and sorted by bin: bin w holds entries start[w] ..
// start[w + 1] − 1 (one bin's atoms side by side for the gather).
struct AtomBins {
  int n[3];
  std::vector<int> start;
  std::vector<double> cart;    // 3 per entry, Å
  std::vector<int> type;       // 0 .. n_types − 1
  std::vector<double> charge;  // e (0 without charges)
};

}  // namespace

// Energies (K) of a rigid linear molecule at ``n_points`` positions (Cartesian, Å) with the
// axis unit vectors given, in a periodic framework.
//
// types: each atom's type, 0 .. n_types − 1 (its element); params: n_types × n_sites ×
// (A, B, shift), each type's Lennard-Jones pair with each site.
// site_offsets: each site's position along the axis (Å). bin_width: the points' bins (Å
// between lattice planes). near_reach: images within this of a bin's sites are summed first.
// charges: the atoms' partial charges (e), or null; with them and a ``coulomb`` array, the
// Coulomb energy (K) of the molecule (``site_charges``, e) goes there, wherever the
// Lennard-Jones energy is below the cap (0 elsewhere; see coulomb_energy for its cutoff).
// Returns 0; 1 when memory ran out; 2 for a site count outside 1..kMaxSites.
extern "C" int mofsieve_energy_grid(int n_atoms, const double* cart, const int* types,
                                    int n_types, int n_sites, const double* site_offsets,
                                    const double* params,
                                    const double* cell, double cutoff, int n_points,
                                    const double* points, const double* axes, double cap,
                                    double bin_width, double near_reach, const double* charges,
                                    const double* site_charges, double* energies,
                                    double* coulomb) {
  try {
    float charge_factor[kMaxSites] = {};  // site charge × e²/(4πε₀ k_B), K Å per e
    if (coulomb != nullptr)
      for (int s = 0; s < std::min(n_sites, kMaxSites); ++s)
        charge_factor[s] = static_cast<float>(site_charges[s] * kCoulombK);
    const Lattice lat = make_lattice(cell);
    int nb[3];
    for (int i = 0; i < 3; ++i)
      nb[i] = std::max(1, std::min(64, static_cast<int>(1.0 / lat.recip[i] / bin_width)));
    const int n_bins = nb[0] * nb[1] * nb[2];
    auto bin_of = [&](const double* f) {
      int index = 0;
      for (int i = 0; i < 3; ++i) {
        const double w = f[i] - std::floor(f[i]);
        index = index * nb[i] + std::min(nb[i] - 1, static_cast<int>(w * nb[i]));
      }
      return index;
    };

    // atoms wrapped into the cell and binned like the points
    std::vector<double> wrapped(3 * static_cast<size_t>(n_atoms));
    AtomBins atoms{{nb[0], nb[1], nb[2]}, std::vector<int>(n_bins + 1, 0), {}, {}, {}};
    std::vector<int> atom_bin(n_atoms);
    for (int a = 0; a < n_atoms; ++a) {
      double f[3];
      to_fractional(lat, cart + 3 * a, f);
      wrap_fraction(f);
      for (int k = 0; k < 3; ++k)
        wrapped[3 * a + k] = f[0] * lat.row[0][k] + f[1] * lat.row[1][k] + f[2] * lat.row[2][k];
      atom_bin[a] = bin_of(f);
      ++atoms.start[atom_bin[a] + 1];
    }
    std::partial_sum(atoms.start.begin(), atoms.start.end(), atoms.start.begin());
    atoms.cart.resize(3 * static_cast<size_t>(n_atoms));
    atoms.type.resize(n_atoms);
    atoms.charge.assign(n_atoms, 0.0);
    {
      std::vector<int> fill(atoms.start.begin(), atoms.start.end() - 1);
      for (int a = 0; a < n_atoms; ++a) {
        const int j = fill[atom_bin[a]]++;
        for (int k = 0; k < 3; ++k) atoms.cart[3 * j + k] = wrapped[3 * a + k];
        atoms.type[j] = types[a];
        if (charges != nullptr) atoms.charge[j] = charges[a];
      }
    }

    // points ordered by bin
    std::vector<int> point_bin(n_points), first(n_bins + 1, 0), order(n_points);
    std::vector<double> point_frac(3 * static_cast<size_t>(n_points));
    for (int p = 0; p < n_points; ++p) {
      double* f = &point_frac[3 * static_cast<size_t>(p)];
      to_fractional(lat, points + 3 * p, f);
      wrap_fraction(f);
      point_bin[p] = bin_of(f);
      ++first[point_bin[p] + 1];
    }
    std::partial_sum(first.begin(), first.end(), first.begin());
    {
      std::vector<int> fill(first.begin(), first.end() - 1);
      for (int p = 0; p < n_points; ++p) order[fill[point_bin[p]]++] = p;
    }

    double reach = 0.0;  // farthest site from the molecule's centre
    for (int s = 0; s < n_sites; ++s) reach = std::max(reach, std::abs(site_offsets[s]));
    // half the longest diagonal of a bin: every point of the bin lies within it of the centre
    double half_diagonal = 0.0;
    for (int sign1 = -1; sign1 <= 1; sign1 += 2)
      for (int sign2 = -1; sign2 <= 1; sign2 += 2) {
        double d[3];
        for (int k = 0; k < 3; ++k)
          d[k] = lat.row[0][k] / nb[0] + sign1 * lat.row[1][k] / nb[1] +
                 sign2 * lat.row[2][k] / nb[2];
        half_diagonal = std::max(half_diagonal, 0.5 * std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]));
      }
    const double gather = cutoff + reach + half_diagonal;
    const double near = near_reach + reach + half_diagonal;
    const float cutoff2 = static_cast<float>(cutoff * cutoff);
    const double gather2 = gather * gather, near2 = near * near;

    if (n_sites < 1 || n_sites > kMaxSites) return 2;
    // the most attraction a site can feel from an image of each type at 1 Å: Σ_sites B
    std::vector<double> pull(n_types, 0.0);
    for (int t = 0; t < n_types; ++t)
      for (int s = 0; s < n_sites; ++s) pull[t] += params[3 * (t * n_sites + s) + 1];
    std::vector<Images> near_images(n_types), far_images(n_types);
    for (int bin = 0; bin < n_bins; ++bin) {
      if (first[bin] == first[bin + 1]) continue;
      const int w[3] = {bin / (nb[1] * nb[2]), (bin / nb[2]) % nb[1], bin % nb[2]};
      double centre_f[3], centre[3];
      for (int i = 0; i < 3; ++i) centre_f[i] = (w[i] + 0.5) / nb[i];
      for (int k = 0; k < 3; ++k)
        centre[k] = centre_f[0] * lat.row[0][k] + centre_f[1] * lat.row[1][k] +
                    centre_f[2] * lat.row[2][k];

      // gather: image s of an atom in bin v lies in slab k = v + s·n along each axis
      for (int t = 0; t < n_types; ++t) near_images[t].clear(), far_images[t].clear();
      double far_pull = 0.0;  // the most the far images can lower any point's energy
      int lo[3], hi[3];
      for (int i = 0; i < 3; ++i) {
        const double span = gather * lat.recip[i];
        lo[i] = static_cast<int>(std::floor((centre_f[i] - span) * nb[i] - 1e-6));
        hi[i] = static_cast<int>(std::floor((centre_f[i] + span) * nb[i] + 1e-6));
      }
      for (int k0 = lo[0]; k0 <= hi[0]; ++k0) {
        const int s0 = floor_div(k0, nb[0]), v0 = k0 - s0 * nb[0];
        for (int k1 = lo[1]; k1 <= hi[1]; ++k1) {
          const int s1 = floor_div(k1, nb[1]), v1 = k1 - s1 * nb[1];
          for (int k2 = lo[2]; k2 <= hi[2]; ++k2) {
            const int s2 = floor_div(k2, nb[2]), v2 = k2 - s2 * nb[2];
            const int v = (v0 * nb[1] + v1) * nb[2] + v2;
            double shift[3];
            for (int k = 0; k < 3; ++k)
              shift[k] = s0 * lat.row[0][k] + s1 * lat.row[1][k] + s2 * lat.row[2][k] - centre[k];
            for (int j = atoms.start[v]; j < atoms.start[v + 1]; ++j) {
              const double d[3] = {atoms.cart[3 * j] + shift[0], atoms.cart[3 * j + 1] + shift[1],
                                   atoms.cart[3 * j + 2] + shift[2]};
              const double d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
              if (d2 >= gather2) continue;
              (d2 < near2 ? near_images : far_images)[atoms.type[j]].push(d, atoms.charge[j]);
            }
          }
        }
      }
      for (int t = 0; t < n_types; ++t)
        far_pull += pull[t] * inverse_sixth_beyond(far_images[t], reach + half_diagonal);
      far_pull *= 1.0 + 1e-4;  // above the single-precision rounding of the sum: still a bound

      for (int j = first[bin]; j < first[bin + 1]; ++j) {
        const int p = order[j];
        const double* f = &point_frac[3 * static_cast<size_t>(p)];
        double offset[3];
        for (int k = 0; k < 3; ++k)
          offset[k] = (f[0] - centre_f[0]) * lat.row[0][k] + (f[1] - centre_f[1]) * lat.row[1][k] +
                      (f[2] - centre_f[2]) * lat.row[2][k];
        const float molecule[3] = {static_cast<float>(offset[0]), static_cast<float>(offset[1]),
                                   static_cast<float>(offset[2])};
        float sites[kMaxSites][3];
        for (int s = 0; s < n_sites; ++s)
          for (int k = 0; k < 3; ++k)
            sites[s][k] = static_cast<float>(offset[k] + site_offsets[s] * axes[3 * p + k]);
        double energy = 0.0;
        for (int t = 0; t < n_types; ++t)
          for (int s = 0; s < n_sites; ++s)
            energy += site_energy(near_images[t], &params[3 * (t * n_sites + s)], sites[s],
                                  cutoff2);
        if (!(energy - far_pull > cap)) {
          for (int t = 0; t < n_types; ++t)
            for (int s = 0; s < n_sites; ++s)
              energy += site_energy(far_images[t], &params[3 * (t * n_sites + s)], sites[s],
                                    cutoff2);
        }
        energies[p] = std::isnan(energy) ? cap : std::min(energy, cap);
        if (coulomb != nullptr) {
          // only where the molecule fits: at the cap, the total is the cap whatever this is
          double electrostatic = 0.0;
          if (energies[p] < cap) {
            for (int t = 0; t < n_types; ++t) {
              electrostatic += coulomb_energy(near_images[t], molecule, sites, charge_factor,
                                              n_sites, cutoff2);
              electrostatic += coulomb_energy(far_images[t], molecule, sites, charge_factor,
                                              n_sites, cutoff2);
            }
          }
          coulomb[p] = electrostatic;
        }
      }
    }
    return 0;
  } catch (const std::bad_alloc&) {
    return 1;
  }
}
