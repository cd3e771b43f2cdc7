# Source this file (`. scripts/portable_numerics.sh`) to make torch, MKL, oneDNN, OpenBLAS,
# NumPy and numba pick the same CPU kernels on every x86-64 machine (AVX2-era, no vendor
# branches), so that a run gives the same bits on an Intel Xeon and an AMD EPYC at the same
# thread count. scripts/test.sh (CI) and scripts/update_reference.sh source it; users get it
# with `bash scripts/repro.sh --portable`. It costs speed: MKL's vendor-neutral branch is
# SSE2 (reports/benchmarks/portable_numerics.md). Other architectures: nothing to pin.
case "$(uname -m)" in
  x86_64 | amd64)
    export ATEN_CPU_CAPABILITY=avx2    # torch's vectorised kernels (default: the widest ISA)
    export MKL_CBWR=COMPATIBLE         # MKL's GEMMs: the one branch that ignores the vendor
    export ONEDNN_MAX_CPU_ISA=AVX2     # oneDNN (convolutions)
    export OPENBLAS_CORETYPE=Haswell   # NumPy / SciPy / scikit-learn's BLAS
    export NUMBA_CPU_NAME=haswell      # UMAP and pynndescent (vaemix.umap_gmm sets it too)
    if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
      # NumPy's AVX-512 exp/log/... (SVML) round differently from its AVX2 versions
      export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"
    fi
    ;;
esac
