"""`make demo`: end-to-end demonstration of the pack on the tiny/trained model."""
import sys


def main():
    print("the demo is not implemented yet (issue: shapes model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
