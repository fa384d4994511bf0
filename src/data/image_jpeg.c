/*
 * image_jpeg.c - JPEG through libjpeg-turbo: gray and YCbCr/RGB files to
 * 8-bit gray or RGB, from memory. The sides are checked after the header
 * is read and before decompression starts (which allocates); progressive
 * files are limited in scans and memory.
 *
 * libjpeg reports errors (and, here, warnings: a warning means lost
 * pixels, such as "premature end of JPEG file") through our handlers,
 * which longjmp back to the setjmp in cudl__jpeg_decode.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t */
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "data/image_internal.h"

typedef struct jpeg_job {
  struct jpeg_error_mgr manager; /* first: libjpeg hands back its address */
  struct jpeg_progress_mgr progress;
  cudl_image_error *err;
  jmp_buf jump;
} jpeg_job;

static void fail(j_common_ptr cinfo, cudl_status status) {
  jpeg_job *job = (jpeg_job *)cinfo->err;
  char text[JMSG_LENGTH_MAX];
  if (job->err->status == CUDL_OK) {
    (*cinfo->err->format_message)(cinfo, text);
    cudl__image_error(job->err, status, "JPEG: %s", text);
  }
  longjmp(job->jump, 1);
}

static void on_error_exit(j_common_ptr cinfo) {
  fail(cinfo, CUDL_ERR_FILE_FORMAT);
}

/* level -1 is a warning; the rest are traces, never printed. Extraneous
 * bytes between markers (common in camera files) lose no pixel. */
static void on_message(j_common_ptr cinfo, int level) {
  if (level != -1 || cinfo->err->msg_code == JWRN_EXTRANEOUS_DATA) return;
  fail(cinfo, cinfo->err->msg_code == JWRN_JPEG_EOF ? CUDL_ERR_FILE_TRUNCATED
                                                    : CUDL_ERR_FILE_FORMAT);
}

/* Each progressive scan is a pass over the whole image: bound their number
 * (a file of thousands of tiny scans would otherwise run for minutes). */
static void on_progress(j_common_ptr cinfo) {
  jpeg_job *job = (jpeg_job *)cinfo->err;
  if (cinfo->is_decompressor &&
      ((j_decompress_ptr)cinfo)->input_scan_number >
          CUDL_IMAGE_MAX_JPEG_SCANS) {
    cudl__image_error(job->err, CUDL_ERR_FILE_SHAPE,
                      "JPEG: more than %d progressive scans",
                      CUDL_IMAGE_MAX_JPEG_SCANS);
    longjmp(job->jump, 1);
  }
}

cudl_status cudl__jpeg_decode(const cudl_allocator *a, const uint8_t *data,
                              size_t size, uint64_t max_pixels, int header_only,
                              cudl_decoded_image *out, cudl_image_error *err) {
  struct jpeg_decompress_struct cinfo;
  jpeg_job job;
  uint8_t *volatile pixels = NULL;
  volatile size_t pixels_size = 0;
  size_t row_bytes;
  uint64_t memory;
  cudl_status status;
  memset(out, 0, sizeof *out);
  memset(&cinfo, 0, sizeof cinfo);
  if (size > ULONG_MAX) /* jpeg_mem_src takes an unsigned long */
    return cudl__image_error(err, CUDL_ERR_FILE_SHAPE, "JPEG: too large");
  cinfo.err = jpeg_std_error(&job.manager);
  job.manager.error_exit = on_error_exit;
  job.manager.emit_message = on_message;
  job.err = err;
  if (setjmp(job.jump)) {
    jpeg_destroy_decompress(&cinfo);
    cudl__image_free(a, pixels, pixels_size);
    return err->status;
  }
  jpeg_create_decompress(&cinfo);
  /* Beyond this libjpeg refuses (it has no backing store): progressive
   * coefficient buffers are at most 2 bytes x 3 components per pixel of
   * the budget, plus slack for the working rows. */
  memory = max_pixels * 8 + (16u << 20);
  cinfo.mem->max_memory_to_use = memory > LONG_MAX ? LONG_MAX : (long)memory;
  job.progress.progress_monitor = on_progress;
  cinfo.progress = &job.progress;
  jpeg_mem_src(&cinfo, data, (unsigned long)size);
  jpeg_read_header(&cinfo, TRUE);
  status = cudl__image_check_size("JPEG", cinfo.image_height,
                                  cinfo.image_width, max_pixels, err);
  if (status != CUDL_OK) {
    jpeg_destroy_decompress(&cinfo);
    return status;
  }
  out->info.format = CUDL_IMAGE_FORMAT_JPEG;
  out->info.height = (int)cinfo.image_height;
  out->info.width = (int)cinfo.image_width;
  out->info.bit_depth = cinfo.data_precision;
  switch (cinfo.jpeg_color_space) {
  case JCS_GRAYSCALE: out->info.channels = 1; break;
  case JCS_CMYK:
  case JCS_YCCK: out->info.channels = 4; break;
  default: out->info.channels = 3; break;
  }
  if (header_only) {
    jpeg_destroy_decompress(&cinfo);
    return CUDL_OK;
  }
  if (out->info.channels == 4) {
    jpeg_destroy_decompress(&cinfo);
    return cudl__image_error(err, CUDL_ERR_FILE_FORMAT,
                             "JPEG: CMYK/YCCK colour is not supported "
                             "(convert the file to RGB)");
  }
  cinfo.out_color_space = out->info.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  cinfo.dct_method = JDCT_ISLOW;
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_width != cinfo.image_width ||
      cinfo.output_height != cinfo.image_height ||
      cinfo.output_components != out->info.channels) {
    jpeg_destroy_decompress(&cinfo);
    return cudl__image_error(err, CUDL_ERR_INTERNAL,
                             "JPEG: libjpeg changed the output shape");
  }
  /* height * width <= max_pixels < 2^32, 3 samples: no overflow. */
  row_bytes = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
  pixels_size = row_bytes * cinfo.output_height;
  pixels = (uint8_t *)cudl__image_alloc(a, pixels_size);
  if (pixels == NULL) {
    jpeg_destroy_decompress(&cinfo);
    return cudl__image_error(err, CUDL_ERR_OUT_OF_MEMORY,
                             "JPEG: cannot allocate %zu bytes of pixels",
                             (size_t)pixels_size);
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = pixels + (size_t)cinfo.output_scanline * row_bytes;
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
      /* Only a suspending source returns no row; the memory source never
       * suspends, but a silent zero row must not pass as pixels. */
      cudl__image_error(err, CUDL_ERR_FILE_TRUNCATED,
                        "JPEG: the data ends before row %u",
                        (unsigned)cinfo.output_scanline);
      longjmp(job.jump, 1);
    }
  }
  /* Every row is decoded: what follows the last scan is not read. */
  jpeg_destroy_decompress(&cinfo);
  out->pixels = pixels;
  out->size = pixels_size;
  return CUDL_OK;
}
