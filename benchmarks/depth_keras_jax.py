"""Notebook 08's depth sweep at the gpu budget's size, in Keras 3 on JAX, for a GPU machine without TensorFlow.

    FASHION_DIR=/path/to/fashion-mnist python benchmarks/depth_keras_jax.py OUT_JSON SEEDS CONFIGS [SECONDS]

trains each configuration of CONFIGS (e.g. "SABDE") for each seed in SEEDS (e.g. "012") on Fashion-MNIST with
notebook 08's builder and recipe (width 1, 15 passes over 55,000 images, Adam one-cycle peaking at 0.01, batch
128), writes every finished run to OUT_JSON at once, and stops starting new runs after SECONDS. It needs only
keras and jax (and numpy): docs/benchmarks.md, "Depth on Fashion-MNIST", has its results on an NVIDIA H200.
DEPTH_WIDTH, DEPTH_EPOCHS and DEPTH_TRAIN make it small enough for a smoke test on a CPU.
"""

import gzip
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.environ.get("FASHION_DIR", os.path.dirname(os.path.abspath(__file__)))
BLOCK_FILTERS = (64, 128, 256, 512, 512)
POOLED_BLOCKS = 3
CONFIGS = {"S": (1, 1, 1, 0, 0), "A": (1, 1, 2, 2, 2), "B": (2, 2, 2, 2, 2), "D": (2, 2, 3, 3, 3), "E": (2, 2, 4, 4, 4)}
WIDTH, HEAD, BATCH, PEAK, EPOCHS, BN_MOMENTUM = 1.0, 512, 128, 0.01, 15, 0.99  # the gpu budget's sizes
WIDTH = float(os.environ.get("DEPTH_WIDTH", WIDTH))  # smaller only for a smoke test
EPOCHS = int(os.environ.get("DEPTH_EPOCHS", EPOCHS))
TRAIN = int(os.environ.get("DEPTH_TRAIN", 55000))


def read_idx(name):
    raw = gzip.decompress(open(os.path.join(HERE, name + ".gz"), "rb").read())
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def vgg_from_row(row, width=1.0, head=512, bn_momentum=0.99):  # notebook 08's builder, line for line
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for block, (convs, filters) in enumerate(zip(row, BLOCK_FILTERS, strict=True)):
        for _ in range(convs):
            x = keras.layers.Conv2D(
                max(1, round(filters * width)), 3, padding="same", use_bias=False, kernel_initializer="he_normal"
            )(x)
            x = keras.layers.BatchNormalization(momentum=bn_momentum)(x)
            x = keras.layers.ReLU()(x)
        if block < POOLED_BLOCKS:
            x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(max(1, round(head * width)), use_bias=False, kernel_initializer="he_normal")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=bn_momentum)(x))
    x = keras.layers.Dropout(0.25)(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def main():
    out, seeds, names = sys.argv[1], [int(s) for s in sys.argv[2]], list(sys.argv[3])
    budget_s = float(sys.argv[4]) if len(sys.argv) > 4 else 1e9
    start = time.time()
    x_all, y_all = read_idx("train-images-idx3-ubyte"), read_idx("train-labels-idx1-ubyte")
    x_test, y_test = read_idx("t10k-images-idx3-ubyte"), read_idx("t10k-labels-idx1-ubyte")
    order = np.random.default_rng(0).permutation(len(x_all))  # vgg_helpers.data.train_val_split(seed=0)
    train = order[5000:][:TRAIN]
    x_train = (x_all[train].astype("float32") / 255)[..., None]
    y_train = y_all[train].astype("int32")
    x_test = (x_test.astype("float32") / 255)[..., None]
    steps = EPOCHS * int(np.ceil(len(x_train) / BATCH))
    results = json.load(open(out)) if os.path.exists(out) else []
    done = {(r["config"], r["seed"]) for r in results}
    for seed in seeds:
        for name in names:
            if (name, seed) in done:
                continue
            if time.time() - start > budget_s:
                print(f"time's up: {name} seed {seed} not started", flush=True)
                continue
            keras.utils.set_random_seed(seed)
            model = vgg_from_row(CONFIGS[name], WIDTH, HEAD, BN_MOMENTUM)
            schedule = keras.optimizers.schedules.CosineDecay(
                PEAK / 10, decay_steps=steps - steps // 4, alpha=0.01, warmup_target=PEAK, warmup_steps=steps // 4
            )
            model.compile(
                keras.optimizers.Adam(schedule),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )
            t0 = time.time()
            history = model.fit(x_train, y_train, batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=True)
            seconds = time.time() - t0
            accuracy = float(model.evaluate(x_test, y_test, batch_size=1000, verbose=0, return_dict=True)["accuracy"])
            results.append(
                {
                    "config": name,
                    "seed": seed,
                    "test_accuracy": accuracy,
                    "train_seconds": seconds,
                    "final_train_loss": float(history.history["loss"][-1]),
                    "params": model.count_params(),
                }
            )
            json.dump(results, open(out, "w"), indent=1)
            print(f"{name} seed {seed}: {accuracy:.4f} in {seconds:.0f} s ({model.count_params():,} parameters)", flush=True)
    print(f"total {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
