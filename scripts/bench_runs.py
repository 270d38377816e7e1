"""Summarises several runs of `webhooks-bench dispatch` (its table rows on stdin, run after run):
for each measured run, its ratio to the bare client in every run and their median, and its CPU
per delivery over the runs; and b2 against a4, the bare client in b2's shape. A ratio is taken
within one run, where the machine was the same for both."""
import statistics
import sys

rows = []  # one dict per run of the benchmark: run key -> (deliveries/s, CPU ms per delivery)
for line in sys.stdin:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    key = cells[0].split(".")[0]
    if key == "a" or not rows:  # each run of the benchmark begins with a
        rows.append({})
    rows[-1][key] = (float(cells[1].replace(",", "")), float(cells[5]))


def ratios(num, den):
    return [r[num][0] / r[den][0] for r in rows if num in r and den in r]


def spread(values, digits):
    values = sorted(values)
    return f"{values[0]:.{digits}f}-{values[-1]:.{digits}f} (median {statistics.median(values):.{digits}f})"


print(f"{len(rows)} runs")
print("| run | ratio to a, each run | median | our CPU ms / delivery |")
print("|---|---|---|---|")
keys = list(rows[0]) if rows else []
for key in keys:
    cpu = [r[key][1] for r in rows if key in r]
    each = ratios(key, "a")
    print(
        f"| {key} | {', '.join(f'{x:.2f}' for x in each)} | {statistics.median(each):.2f} | {spread(cpu, 4)} |"
    )
for num, den in (("b2", "a4"), ("a2", "a4")):
    each = ratios(num, den)
    if each:
        print(f"{num}/{den}: {', '.join(f'{x:.2f}' for x in each)} (median {statistics.median(each):.2f})")
