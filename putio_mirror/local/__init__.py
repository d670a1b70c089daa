"""This machine's file system: safe paths, the run lock, free space, staging and placement,
the blackhole folder and the torrent/magnet files dropped there, the platform folders.
"""
