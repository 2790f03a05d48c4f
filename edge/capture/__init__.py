"""Getting frames: ``frame.py`` (one camera frame), ``sources.py`` (cameras, files, folders,
streams), ``reader.py`` (the capture loop: reopen, loop, pace), ``imagefile.py`` (reading one image
file), ``inputs.py`` (whether a file is a photo or a video), ``pictures.py`` (pictures handed
over from Python: arrays, PIL images, paths)."""
