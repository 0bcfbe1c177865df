'use client'
import { useEffect } from 'react'

/** Marks the document once React has hydrated the page. */
export default function Hydrated() {
  useEffect(() => {
    document.documentElement.dataset.hydrated = 'true'
  }, [])
  return null
}
