"""Summarise a CSV with pandas and optionally save a chart (runs inside the sandbox)."""

import argparse
import sys

import pandas as pd


def summarize(df: pd.DataFrame) -> str:
    lines = [
        f"rows: {len(df)}",
        f"columns: {len(df.columns)}",
        "",
        "column types and missing values:",
    ]
    for name in df.columns:
        missing = int(df[name].isna().sum())
        lines.append(f"  {name}: {df[name].dtype}, missing {missing}")
    numeric = df.select_dtypes("number")
    if not numeric.empty:
        lines += ["", "numeric statistics:", numeric.describe().round(3).to_string()]
    text = df.select_dtypes(exclude="number")
    for name in text.columns[:5]:
        top = text[name].value_counts().head(3)
        lines.append(f"top values of {name}: " + ", ".join(f"{k} ({v})" for k, v in top.items()))
    return "\n".join(lines)


def chart(df: pd.DataFrame, path: str, max_columns: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = df.select_dtypes("number").iloc[:, :max_columns]
    if numeric.empty:
        raise SystemExit("no numeric columns to chart")
    first = df.columns[0]
    x = pd.to_datetime(df[first], errors="coerce") if df[first].dtype == object else df[first]
    fig, ax = plt.subplots(figsize=(9, 5))
    if x.notna().all() and x.is_monotonic_increasing and first not in numeric.columns:
        by_x = numeric.groupby(x.values).sum()  # several rows per date: plot their totals
        for name in by_x.columns:
            ax.plot(by_x.index, by_x[name], marker="o", markersize=3, label=name)
        ax.set_xlabel(first)
        ax.legend()
        fig.autofmt_xdate()
    else:
        plt.close(fig)
        axes = numeric.hist(figsize=(9, 5), bins=20)
        fig = axes.flat[0].get_figure()
    fig.suptitle("Numeric columns")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv")
    parser.add_argument("--chart", help="save a PNG chart here")
    parser.add_argument("--max-columns", type=int, default=6)
    parser.add_argument("--sep", default=",")
    parser.add_argument("--decimal", default=".")
    args = parser.parse_args()
    df = pd.read_csv(args.csv, sep=args.sep, decimal=args.decimal)
    print(summarize(df))
    if args.chart:
        chart(df, args.chart, args.max_columns)
        print(f"\nchart saved to {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
