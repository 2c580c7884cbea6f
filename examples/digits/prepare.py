"""Write the digits example's data next to this file: `python examples/digits/prepare.py`."""

from pathlib import Path

from labelloop.demo import write_digits_example

if __name__ == "__main__":
    print(write_digits_example(Path(__file__).parent))
