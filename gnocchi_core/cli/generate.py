"""`gnocchi generate`: trials from codes, from the model's code prior, or along a behaviour axis,
saved as a dataset (and optionally an lfads-torch input file, e.g. to augment a decoder's
training set). --points is how many positions a walk visits; --steps, as everywhere, DDIM steps."""

from __future__ import annotations

import numpy as np

from ..errors import GnocchiError
from .common import add_command, add_device, add_force, new_file, refuse_inputs

MODEL = "assets/models/gnocchi"
DATA = "assets/motornet_reach/motornet_reach.h5"


def register(commands) -> None:
    """Add the `generate` command to the top-level subparsers."""
    generate = add_command(
        commands, "generate", help="generate trials from codes or along a behaviour axis and save them as a dataset",
        run=_generate,
        description="Writes generated trials (Poisson spikes, their rates, decoded kinematics, codes) as a "
                    "GNOCCHI dataset, and with --lfads also as an lfads-torch input file, e.g. to augment a "
                    "decoder's training set.",
        examples=[f"gnocchi generate --model {MODEL} --navigate target_x --data {DATA} --out walk.h5 "
                  "--lfads walk_lfads.h5",
                  f"gnocchi generate --model {MODEL} --navigate target_y --data {DATA} --points 5 --references 3 "
                  "--steps 25 --out walk_y.h5",
                  f"gnocchi generate --model {MODEL} --prior 100 --out prior.h5"])
    generate.add_argument("--model", required=True, help="trained model folder")
    source = generate.add_mutually_exclusive_group(required=True)
    source.add_argument("--codes", help=".npy file of codes (trials, code_dim)")
    source.add_argument("--navigate", metavar="AXIS", help="walk along a behaviour axis: start_x, start_y, "
                        "target_x or target_y (needs --data)")
    source.add_argument("--prior", type=int, metavar="N", help="N codes drawn from the model's code mixture")
    generate.add_argument("--data", help="the dataset the model was trained on (for --navigate, and to fit a "
                          "decoder when the model folder has none)")
    generate.add_argument("--points", type=int, default=9,
                          help="--navigate: positions across the grid's span (default 9)")
    generate.add_argument("--references", type=int, default=1, help="--navigate: reference trials (default 1)")
    generate.add_argument("--steps", type=int, metavar="N",
                          help="DDIM steps for GNOCCHI (default: the model's own)")
    generate.add_argument("--seed", type=int, default=0, help="noise and spike seed (default 0)")
    generate.add_argument("--out", required=True, help="dataset file to write (.h5)")
    generate.add_argument("--lfads", help="also write an lfads-torch input file here")
    add_force(generate, "existing output files")
    add_device(generate)


def _generate(args) -> None:
    from ..data import load_dataset
    from ..data.lfads_h5 import export_lfads
    from ..models import load_model
    from ..workflows import generated_trials, load_decoder, navigation_plan

    refuse_inputs({"--out": args.out, "--lfads": args.lfads},
                  {"--data": args.data, "--codes": args.codes, "--model": args.model})
    for option, path in (("--out", args.out), ("--lfads", args.lfads)):
        if path:
            new_file(path, args.force, option)
    if args.prior is not None and args.prior < 1:
        raise GnocchiError(f"--prior {args.prior}: expected a number of codes ≥ 1")
    if args.points < 2 or args.references < 1:
        raise GnocchiError(f"--points {args.points} --references {args.references}: expected ≥ 2 points and ≥ 1 "
                           "reference")
    model = load_model(args.model, device=args.device)
    data = load_dataset(args.data) if args.data else None
    extra = None
    if args.navigate:
        if data is None:
            raise GnocchiError("--navigate needs --data (the behaviour axes are fitted on its training trials)")
        codes, extra = navigation_plan(model, data, args.navigate, points=args.points, references=args.references)
    elif args.prior is not None:
        codes = model.sample_prior(args.prior, seed=args.seed, kind="mixture")
    else:
        codes = _load_codes(args.codes)
    decoder = load_decoder(args.model, data)
    trials = generated_trials(model, codes, seed=args.seed, steps=args.steps, decoder=decoder, extra=extra,
                              source=str(args.data or model.data_info.get("source", "")))
    trials.save(args.out)
    print(f"wrote {args.out}: {trials.n_trials} generated trials × {trials.n_bins} bins × {trials.n_neurons} neurons")
    if args.lfads:
        export_lfads(trials, args.lfads)
        print(f"wrote {args.lfads}: lfads-torch input file")


def _load_codes(path: str) -> np.ndarray:
    """Codes from a .npy file: a 2-D array of finite numbers (no pickled objects)."""
    try:
        codes = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as err:  # not a .npy file, or one holding objects
        raise GnocchiError(f"{path}: not a .npy array of codes ({err})") from None
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.number) or not np.isfinite(codes).all():
        raise GnocchiError(f"{path}: expected a 2-D array of finite codes (trials, code size), found shape "
                           f"{codes.shape}, dtype {codes.dtype}")
    return codes
