"""Infrastructure providers: one adapter package and one service per provider.

``contract`` holds what every adapter implements; ``errors`` the error types they raise;
``baremetal``, ``openstack``, ``vsphere`` and ``simulated`` the adapters and services.
"""
