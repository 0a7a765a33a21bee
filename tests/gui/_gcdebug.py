import gc, time, threading, atexit
_start = {}
pauses = []
def cb(phase, info):
    if phase == "start":
        _start[threading.get_ident()] = time.perf_counter()
    else:
        d = time.perf_counter() - _start.get(threading.get_ident(), time.perf_counter())
        if d > 0.02:
            pauses.append((info["generation"], round(d*1000), threading.current_thread().name, info["collected"]))
gc.callbacks.append(cb)
atexit.register(lambda: print("GC pauses >20ms:", pauses))
