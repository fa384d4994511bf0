/* foreign_module.c - a stand-in for a CUDA backend module of another build
 * of cudl: it has the entry, and a table whose interface stamp is not this
 * build's, which the library must refuse before reading anything else of
 * it (check-no-cuda.sh). The table's first member is the only one every
 * build agrees on. */
struct foreign_table {
  const char *interface;
};

const struct foreign_table *cudl_cuda_module_entry(const void *core);

const struct foreign_table *cudl_cuda_module_entry(const void *core) {
  static const struct foreign_table table = {"0.0.0-foreign0000000"};
  (void)core;
  return &table;
}
