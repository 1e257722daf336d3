# Host-side checks of 11-libcamera-backports.sh: the same as 10-libcamera's, on its results.
exec bash "$(dirname "$0")/10-libcamera.host.sh"
