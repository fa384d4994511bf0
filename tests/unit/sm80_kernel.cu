// sm80_kernel.cu - a kernel compiled for sm_80 machine code alone, no PTX
// (tests/CMakeLists.txt), which only a card of compute capability 8.x can
// load: test_cuda_arch asks the driver for it on other cards to see the
// refusal that a card the build has no code for gets.
namespace {

__global__ void sm80_only_kernel() {}

}  // namespace

extern "C" const void *cudl_test_sm80_only_kernel(void) {
  return reinterpret_cast<const void *>(&sm80_only_kernel);
}
