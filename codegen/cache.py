"""The compiler cache: where it is, how much it holds, and clearing it.

    python -m codegen.cache            # its directory, number of files and size
    python -m codegen.cache --clear    # delete what codegen put there

Only files codegen writes are counted or removed (libraries, their C sources, recipes, object
and temporary files), never anything else someone put in the directory.
"""
import argparse
import os

from codegen.build import cache_dir

SUFFIXES = ('.so', '.c', '.recipe', '.o', '.tmp')


def cached_files():
    """Paths of the files codegen wrote into the cache directory."""
    root = cache_dir()
    return [os.path.join(root, name) for name in sorted(os.listdir(root))
            if name.endswith(SUFFIXES) and os.path.isfile(os.path.join(root, name))]


def size():
    """(number of files, bytes) in the cache."""
    paths = cached_files()
    return len(paths), sum(os.path.getsize(path) for path in paths)


def clear():
    """Delete every file of the cache; returns (files, bytes) removed. Programs built earlier
    in this process keep working (their libraries are loaded); later builds compile again."""
    removed = [0, 0]
    for path in cached_files():
        try:
            bytes_ = os.path.getsize(path)
            os.unlink(path)
        except FileNotFoundError:  # another process cleared it first
            continue
        removed[0] += 1
        removed[1] += bytes_
    return tuple(removed)


def _megabytes(n):
    return f'{n / 1e6:.1f} MB'


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m codegen.cache',
                                     description="Show or clear codegen's compiler cache.")
    parser.add_argument('--clear', action='store_true', help='delete every cached file')
    args = parser.parse_args(argv)
    if args.clear:
        files, bytes_ = clear()
        print(f'removed {files} files ({_megabytes(bytes_)}) from {cache_dir()}')
    else:
        files, bytes_ = size()
        print(f'{cache_dir()}: {files} files, {_megabytes(bytes_)}')


if __name__ == '__main__':
    main()
