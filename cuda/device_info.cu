// Device discovery for the CUDA backend: how many GPUs this process can use. The kernels and
// the backend itself live beside this file (the CUDA issue fills them in).
#include <cuda_runtime.h>

extern "C" int yaie_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess)
    return 0;
  return n;
}
