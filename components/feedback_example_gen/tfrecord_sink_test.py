"""The gzip TFRecord sink against Beam's own framing and TensorFlow's reader."""
import glob
import gzip
import io
import os
import random

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.io.tfrecordio import _TFRecordUtil

from components.feedback_example_gen import tfrecord_sink


def _records():
    rng = random.Random(5)
    return ([b"", b"x", bytes(range(256)) * 70]   # empty, one byte, > 16 kB (multi-byte varints)
            + [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3000)))
               for _ in range(300)])


def test_frames_are_byte_identical_to_beams():
    for record in _records():
        expected = io.BytesIO()
        _TFRecordUtil.write_record(expected, record)
        assert tfrecord_sink.tfrecord_frame(record) == expected.getvalue()


@pytest.mark.parametrize("level", [1, 6])
def test_tensorflow_reads_back_every_record(tmp_path, level):
    records = _records()
    prefix = str(tmp_path / "data_tfrecord")
    with beam.Pipeline() as pipeline:
        _ = (pipeline | beam.Create(records)
             | tfrecord_sink.WriteToGzipTFRecord(prefix, compression_level=level))
    paths = sorted(glob.glob(prefix + "-*-of-*.gz"))
    assert paths
    for path in paths:
        with gzip.open(path) as f:   # a valid, complete gzip stream
            f.read()
    # TensorFlow checks both CRCs of every record while reading.
    read = [r.numpy() for r in tf.data.TFRecordDataset(paths, compression_type="GZIP")]
    assert sorted(read) == sorted(records)


def test_a_lower_level_trades_size_for_speed(tmp_path):
    records = [b"user-%d item-%d " % (i % 50, i % 7) * 40 for i in range(2000)]
    sizes = {}
    for level in (1, 9):
        prefix = os.path.join(str(tmp_path), "level%d" % level)
        with beam.Pipeline() as pipeline:
            _ = (pipeline | beam.Create(records)
                 | tfrecord_sink.WriteToGzipTFRecord(prefix, compression_level=level))
        sizes[level] = sum(os.path.getsize(p) for p in glob.glob(prefix + "-*"))
    assert sizes[9] < sizes[1]


def test_bad_level_is_refused():
    with pytest.raises(ValueError, match="compression_level"):
        tfrecord_sink.WriteToGzipTFRecord("/tmp/x", compression_level=0)
