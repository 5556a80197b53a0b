"""A notebook-style tour of nightjar-client against `nightjar demo`.

It plots with matplotlib: `pip install './client[plot]'`.  Run the demo in one terminal
(`make demo` in the repository), then:

    python client/examples/tour.py                 # http://127.0.0.1:8000
    NIGHTJAR_URL=http://host:8000 python client/examples/tour.py --listen 60

It finds supernova candidates by class and probability, plots one light curve, fetches
stamps, cross-matches a catalogue and listens to live classifications for a while
(`--listen` seconds; feed it by ingesting more alerts, e.g. `nightjar ingest DIR`).
Figures are written to ./tour-*.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import matplotlib

matplotlib.use("Agg")  # files, not windows: also runs on a server
import matplotlib.pyplot as plt
import numpy as np
from nightjar_client import APIError, Nightjar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="gateway (default $NIGHTJAR_URL or "
                                                    "http://127.0.0.1:8000)")
    parser.add_argument("--listen", type=float, default=60.0,
                        help="seconds to listen to live classifications")
    args = parser.parse_args()
    nj = Nightjar(args.url)

    # 1. Supernova candidates: the stamp classifier's SN class, most probable first
    candidates = nj.query_objects(classifier="stamp_classifier", class_name="SN",
                                  probability=0.5, order_by="probability",
                                  order_mode="DESC", max_results=200)
    print(f"{len(candidates)} SN candidates with P(SN) >= 0.5; the best five:")
    print(candidates[["oid", "ndet", "firstmjd", "meanra", "meandec", "probability"]]
          .head().to_string(index=False))

    # 2. The light curve of the most detected real ZTF object with a light-curve class
    classified = nj.query_objects(classifier="lc_classifier", ranking=1, order_by="ndet",
                                  order_mode="DESC", page_size=1, page=1)
    oid = classified.oid.iloc[0]
    print(f"\n{oid}: {nj.query_probabilities(oid, classifier='lc_classifier')[0]}")
    points = nj.query_lightcurve(oid, format="pandas")
    figure, axis = plt.subplots(figsize=(7, 4))
    for (band, kind), group in points.groupby(["band", "kind"]):
        if kind == "UPPER_LIMIT":
            axis.scatter(group.mjd, group.mag, marker="v", alpha=0.4, label=f"{band} limit")
        elif kind in ("CORRECTED", "DIFFERENCE"):
            axis.errorbar(group.mjd, group.mag, group.mag_err, fmt="o", ms=3,
                          label=f"{band} {kind.lower()}")
    axis.invert_yaxis()
    axis.set(xlabel="MJD", ylabel="magnitude [AB]", title=oid)
    axis.legend(fontsize=7)
    figure.savefig("tour-lightcurve.png", dpi=120)
    print(f"light curve: {len(points)} points -> tour-lightcurve.png")

    # 3. Stamps of the best SN candidate's first alert
    for best in [*candidates.oid, oid]:
        try:
            science, template, difference = nj.get_stamps(best, format="numpy")
        except APIError as exc:  # e.g. an early alert whose "cutouts" are JPEG, not FITS
            print(f"{best}: {exc.message}")
            continue
        print(f"\n{best}: cutouts {science.shape}; peak of the difference "
              f"{difference.max():.0f} counts, template median "
              f"{float(np.median(template)):.0f}")
        nj.plot_stamps(best).savefig("tour-stamps.png", dpi=120)
        print("stamps -> tour-stamps.png")
        break

    # 4. Cross-match periodic variables with the catalogues (GCVS and SPICY in the demo)
    periodic = nj.query_objects(classifier="lc_classifier_top", class_name="Periodic",
                                page_size=50, page=1)
    print(f"\n{len(periodic)} periodic variables; catalogue sources within 5 arcsec:")
    for row in periodic.itertuples():
        for name, frame in nj.catshtm_crossmatch(row.meanra, row.meandec, 5.0).items():
            print(f"  {row.oid}: {name} {frame.source_id.iloc[0]} at "
                  f"{frame.distance_arcsec.iloc[0]:.2f} arcsec "
                  f"{frame.drop(columns=['catalog', 'source_id']).iloc[0].to_dict()}")
    try:
        print(f"TNS: {nj.query_tns(oid) or 'nothing within 2 arcsec'}")
    except APIError as exc:  # the demo has no TNS snapshot unless `nightjar tns sync` ran
        print(f"TNS: {exc.message}")

    # 5. Live classifications for a while
    seen = []

    async def listen() -> None:
        async for c in nj.subscribe_classifications(ranking=1):
            seen.append(c)
            print(f"  {c.oid} {c.classifier_name}: {c.class_name} ({c.probability:.2f})")

    print(f"\nlistening to live classifications for {args.listen:g} s ...")
    with contextlib.suppress(asyncio.TimeoutError):
        asyncio.run(asyncio.wait_for(listen(), args.listen))
    print(f"{len(seen)} classifications received")
    nj.close()


if __name__ == "__main__":
    main()
