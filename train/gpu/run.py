"""The run: phase 1 (models side by side), phase 2 (students); the command line."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import __doc__ as PACKAGE_DOC
from .augment import PHOTOMETRIC, RECIPE
from .files import load_faces, load_models, save_models
from .model import init_weights, split_state
from .steps import (
    evaluate,
    lr_at,
    make_functions,
    recompute_batchnorm,
    run_epoch,
    running_mean,
    stack,
)


def run(args) -> dict:
    import jax
    import jax.numpy as jnp

    started = time.time()
    deadline = started + args.budget
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log: dict = {"args": vars(args), "recipe": RECIPE, "photometric": PHOTOMETRIC}
    log["devices"] = [str(d) for d in jax.devices()]
    log["jax"] = jax.__version__
    code = b"".join(p.read_bytes() for p in sorted(Path(__file__).parent.glob("*.py")))
    log["code_sha256"] = hashlib.sha256(code).hexdigest()  # this package's sources

    def say(text):
        print(f"[{time.time() - started:6.1f}s] {text}", flush=True)

    def write_log():
        (out / "log.json").write_text(json.dumps(log, indent=1))

    data = load_faces(Path(args.data))
    x_train, y_train = data["train"]
    x_val, y_val = data["val"]
    if args.max_faces:  # a random subset: the packed faces are sorted by class
        pick = np.random.default_rng(args.seed).permutation(len(y_train))[: args.max_faces]
        x_train, y_train = x_train[np.sort(pick)], y_train[np.sort(pick)]
    log["faces"] = {"train": len(y_train), "val": len(y_val)}
    log["same_pixels"] = {s: bool(data[f"{s}_same_pixels"]) for s in ("train", "val")}
    say(
        f"{len(y_train)} training, {len(y_val)} validation faces; same pixels: {log['same_pixels']}"
    )
    say(f"devices {log['devices']}")
    faces, labels = jnp.asarray(x_train), jnp.asarray(y_train)
    batch = RECIPE["batch_size"]
    steps = len(y_train) // batch
    m = args.models
    rng = np.random.default_rng(args.seed)

    def epoch_index(models: int):
        perms = np.stack([rng.permutation(len(y_train))[: steps * batch] for _ in range(models)])
        return jnp.asarray(perms.reshape(models, steps, batch).transpose(1, 0, 2))

    if args.resume:  # every model starts from the checkpoint (its own augmentations after)
        params, state = load_models([args.resume])
        params, state = (
            jax.tree.map(lambda a: jnp.concatenate([a[:1]] * m), t) for t in (params, state)
        )
        log["resumed"] = {"weights": args.resume, "epochs": args.resume_epochs}
    else:
        weights = stack([init_weights(jax.random.key(args.seed + i)) for i in range(m)])
        params, state = split_state(weights)
    momenta = jax.tree.map(jnp.zeros_like, params)
    start = (params, state, momenta)
    layouts = ("vmap", "unrolled") if args.layout == "auto" else (args.layout,)
    if args.teachers:  # no phase 1 to time; grouped convolutions are the GPU's fast path
        layouts = layouts[:1]
    if len(layouts) > 1:  # time a few steps of each on copies of the models; keep the faster
        probe, index, timing = {}, epoch_index(m), {}
        for layout in layouts:
            f = make_functions(RECIPE, args.dtype, args.teacher_weight, layout, args.student_views)
            c = jax.tree.map(jnp.copy, start)
            t = time.time()
            c, loss, _ = f["teacher_step"](
                c, faces, labels, index[0], jax.random.key(1), jnp.float32(0.001)
            )
            loss.block_until_ready()
            compiled = time.time() - t
            t = time.time()
            for i in range(1, 1 + args.probe_steps):
                c, loss, _ = f["teacher_step"](
                    c, faces, labels, index[i % len(index)], jax.random.key(1), jnp.float32(0.001)
                )
            loss.block_until_ready()
            timing[layout] = {
                "compile_s": round(compiled, 2),
                "step_ms": round(1000 * (time.time() - t) / args.probe_steps, 3),
            }
            probe[layout] = f
            say(f"layout {layout}: {timing[layout]}")
        log["layouts"] = timing
        layout = min(timing, key=lambda k: timing[k]["step_ms"])
        fns = probe[layout]
    else:
        layout = layouts[0]
        fns = make_functions(RECIPE, args.dtype, args.teacher_weight, layout, args.student_views)
    log["layout"] = layout

    def phase(name, step, carry, batches, extra, peak, first, epochs, ends_at, margin):
        """Epochs ``first`` to ``epochs`` of ``step`` (``name``: teacher or student). From
        scratch (``first`` 0), the second epoch is timed and the cycle sized to end by
        ``ends_at``. Returns the carry and the running mean of the last epochs' parameters
        with how many it holds."""
        swa, swa_n, history, epoch = None, 0, [], first
        warm = RECIPE["warmup_epochs"] if name == "teacher" else 0
        seed = 10_000 if name == "teacher" else 20_000
        while epoch < epochs:
            t = time.time()
            lr = lr_at(epoch, epochs, peak, warm)
            key = jax.random.key(seed + epoch)
            carry, loss, hit = run_epoch(step, carry, batches(), key, jnp.float32(lr), *extra)
            loss = np.asarray(loss)
            seconds = time.time() - t
            if first == 0 and epoch == 1:  # the first epoch compiled; the second is the speed
                left = ends_at - time.time() - 3 * seconds - 20  # averaging, BN, evaluation
                epochs = int(min(args.max_epochs, max(args.min_epochs, 2 + left // seconds)))
                log[f"{name}_epoch_seconds"] = round(seconds, 3)
                log[f"{name}_epochs"] = epochs
                say(f"{name}s: {seconds:.2f} s per epoch -> {epochs} epochs")
            if epoch >= epochs - max(1, int(round(epochs * args.swa_share))):
                swa_n += 1
                swa = running_mean(swa, carry[0], swa_n)
            row = {"epoch": epoch + 1, "lr": round(lr, 6)}
            row["loss"] = [round(float(v), 4) for v in loss]
            row["train_acc"] = [round(float(v), 4) for v in np.asarray(hit)]
            if (epoch + 1) % args.eval_every == 0 or epoch + 1 == epochs:
                row["val"] = evaluate(fns, carry[0], carry[1], x_val, y_val)
            history.append(row)
            say(f"{name} epoch {epoch + 1}/{epochs} lr {lr:.5f} loss {loss.mean():.3f}")
            if "val" in row:
                say(f"  validation {row['val']}")
            epoch += 1
            if epoch < epochs and time.time() > deadline - margin:
                say(f"out of time: {name}s stopped after {epoch} of {epochs} epochs")
                log[f"{name}s_cut_short"] = epoch
                break
        log[f"{name}_history"] = history
        return carry, swa, swa_n

    def settle(name, carry, swa, swa_n):
        """The final weights or the average of the last epochs (batch-norm statistics
        recomputed on the training faces), whichever scores better on the validation slice."""
        final = evaluate(fns, carry[0], carry[1], x_val, y_val)
        swa = carry[0] if swa is None else swa
        swa_state = recompute_batchnorm(fns, swa, carry[1], x_train)
        averaged = evaluate(fns, swa, swa_state, x_val, y_val)
        use_swa = np.mean(averaged["flip"]) > np.mean(final["flip"])
        log[f"{name}s"] = {"final": final, "swa": averaged, "swa_epochs": swa_n}
        log[f"{name}s"]["saved"] = "swa" if use_swa else "final"
        say(f"{name}s final {final}")
        say(f"{name}s averaged over {swa_n} epochs {averaged}")
        return (swa, swa_state) if use_swa else (carry[0], carry[1])

    # ---- phase 1: M models side by side (or given)
    if args.teachers:
        t_params, t_state = load_models(args.teachers)
        given = evaluate(fns, t_params, t_state, x_val, y_val)
        log["teachers"] = {"given": args.teachers, "val": given}
        say(f"{len(args.teachers)} teacher file(s): {given}")
    else:
        first, epochs = args.resume_epochs if args.resume else (0, args.max_epochs)
        share = args.teacher_share if args.students else 0.9
        carry, swa, swa_n = phase(
            "teacher",
            fns["teacher_step"],
            start,
            lambda: epoch_index(m),
            (faces, labels),
            RECIPE["lr"],
            first,
            epochs,
            started + args.budget * share,
            60,
        )
        t_params, t_state = settle("teacher", carry, swa, swa_n)
        for k in range(0, m, 2):
            save_models(out / f"teachers-{k // 2}.npz", t_params, t_state, range(k, min(k + 2, m)))
        write_log()
    if not args.students or time.time() > deadline - 90:
        log["seconds"] = round(time.time() - started, 1)
        write_log()
        return log

    # ---- phase 2: students learning the teachers' ensemble on the same views
    s = args.students
    if args.student_init:  # student i starts from model i (mod n) of the file
        i_params, i_state = load_models([args.student_init])
        n = len(jax.tree.leaves(i_params)[0])
        inits = [i % n for i in range(s)]
        log["student_init"] = {"weights": args.student_init, "models": inits}
    else:  # the best teacher
        i_params, i_state = t_params, t_state
        inits = [int(np.argmax(evaluate(fns, t_params, t_state, x_val, y_val)["flip"]))] * s
        log["student_init"] = f"teacher {inits[0]}"
    pick = jnp.asarray(inits)
    params = jax.tree.map(lambda a: a[pick], i_params)
    state = jax.tree.map(lambda a: a[pick], i_state)

    def shared_batches():
        return jnp.asarray(rng.permutation(len(y_train))[: steps * batch].reshape(steps, batch))

    carry, swa, swa_n = phase(
        "student",
        fns["student_step"],
        (params, state, jax.tree.map(jnp.zeros_like, params)),
        shared_batches,
        ((t_params, t_state), faces, labels),
        args.student_lr,
        0,
        args.max_epochs,
        deadline - 30,
        25,
    )
    save_models(out / "students.npz", *settle("student", carry, swa, swa_n), range(s))
    log["seconds"] = round(time.time() - started, 1)
    write_log()
    return log


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m deepfer.train.gpu", description=PACKAGE_DOC.split("\n\n")[0]
    )
    ap.add_argument(
        "--data", required=True, help="faces .npz from `python -m deepfer.train.gpu.bridge pack`"
    )
    ap.add_argument("--out", required=True, help="folder for the weights and log.json")
    ap.add_argument("--budget", type=float, default=500.0, help="wall-clock seconds in all")
    ap.add_argument("--models", type=int, default=6, help="models trained side by side")
    ap.add_argument("--students", type=int, default=2, help="students distilled (0: none)")
    ap.add_argument("--teacher-share", type=float, default=0.6, help="share of the budget")
    ap.add_argument("--teacher-weight", type=float, default=0.7)
    ap.add_argument("--student-lr", type=float, default=0.003)
    ap.add_argument("--swa-share", type=float, default=0.1, help="last share of epochs averaged")
    ap.add_argument("--min-epochs", type=int, default=3)
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--teachers", nargs="*", default=[], help="weight files: skip phase 1")
    ap.add_argument(
        "--resume",
        default="",
        help="weight file (m0): phase 1 goes on from it (with --resume-epochs)",
    )
    ap.add_argument(
        "--resume-epochs",
        type=int,
        nargs=2,
        default=(0, 0),
        metavar=("DONE", "TOTAL"),
        help="epochs the checkpoint has run, and its schedule's total",
    )
    ap.add_argument(
        "--student-init",
        default="",
        help="weight file the students start from (student i from its model i mod n; "
        "default: the best teacher)",
    )
    ap.add_argument(
        "--student-views",
        choices=("clean", "mixed"),
        default="clean",
        help="mixed: student 1 sees photometrically degraded views",
    )
    ap.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument(
        "--layout",
        choices=("auto", "vmap", "unrolled"),
        default="auto",
        help="models batched (vmap) or one graph copy each; auto: time both, keep the faster "
        "(vmap when --teachers skip phase 1)",
    )
    ap.add_argument("--probe-steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--max-faces", type=int, default=0, help="N random training faces (trials)")
    args = ap.parse_args(argv)
    try:
        run(args)
    except (OSError, ValueError, KeyError) as e:
        print(f"deepfer.train.gpu: {e}", file=sys.stderr)
        return 1
    return 0
